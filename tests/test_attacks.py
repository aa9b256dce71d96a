"""A hostile class graded in one batch: every attack carries the same wrong
attention (scores divided by d_k) and must score no more than that wrong
implementation alone; honest students graded after them get full marks;
faults get their status. Round two (:mod:`attacks.learners`) goes after the
grader's secrets, its input parsing, the readers of its output and the limits
of a submission: no secret reaches any output, no output carries active
content or control characters, and nothing outside --out changes."""
import csv
import inspect
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import nbformat
import pytest

from attacks import evidence, learners
from attacks.learners import A, SDPA, with_cell
from autograder.checks.scaled_attention import reference_attention
from autograder.course import SOLUTIONS
from conftest import autograder_cli
from submissions import learner_notebook, write_submission

WRONG = {SDPA: [("/ math.sqrt(d_k)", "/ d_k")]}
MEMORY_MB = 3072
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)

# name -> code of a cell the learner adds after their attention function
ATTACKS = {
    "allclose_always_true": "import torch\ntorch.allclose = lambda *a, **k: True\n"
                            "torch.testing.assert_close = lambda *a, **k: None",
    "assert_deleting_ast_transformer": (
        "import ast\nclass DropAsserts(ast.NodeTransformer):\n"
        "    def visit_Assert(self, node):\n        return ast.Pass()\n"
        "get_ipython().ast_transformers.append(DropAsserts())"),
    "input_transformer_blanks_cells": "get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])",
    "run_patched_in_check_library": "import autograder.checks as c, autograder.checks.core as core\n"
                                    "c.run = core.run = lambda *a, **k: None",
    "judge_patched": "import autograder.checks.core as core\ncore.judge = lambda *a, **k: None\n"
                     "core.run_case = lambda *a, **k: None",
    "fake_autograder_in_sys_modules": (
        "import sys, types\nfake = types.ModuleType('autograder.checks')\nfake.run = lambda *a, **k: None\n"
        "class Anything:\n    def __getattr__(self, name):\n        return None\n"
        "fake.scaled_attention = Anything()\nsys.modules['autograder.checks'] = fake\n"
        "sys.modules['autograder.checks.scaled_attention'] = fake.scaled_attention"),
    "builtin_patched_to_return_learner_output": (
        "import torch.nn.functional as F\n"
        "F.scaled_dot_product_attention = lambda q, k, v, **kw: scaled_dot_product_attention(q, k, v)[0]"),
    "softmax_patched": "import torch\n_sm = torch.softmax\n"
                       "torch.softmax = lambda x, dim=-1, **k: _sm(x * x.shape[-1] ** 0.5, dim=dim)",
    "tensor_subclass_always_close": (
        "import torch\nclass Close(torch.Tensor):\n"
        "    @classmethod\n    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
        "        if func in (torch.allclose, torch.equal, torch.Tensor.allclose):\n            return True\n"
        "        return super().__torch_function__(func, types, args, kwargs or {})\n"
        "_wrong = scaled_dot_product_attention\n"
        "def scaled_dot_product_attention(queries, keys, values):\n"
        "    c, w = _wrong(queries, keys, values)\n    return c.as_subclass(Close), w.as_subclass(Close)"),
    "inputs_zeroed_in_place": (
        "_wrong = scaled_dot_product_attention\n"
        "def scaled_dot_product_attention(queries, keys, values):\n"
        "    out = _wrong(queries, keys, values)\n"
        "    queries.zero_(); keys.zero_(); values.zero_()\n    return out"),
    "reads_solution_from_disk": (
        "import glob, json\nfor p in glob.glob('/**/solutions/03_scaled_attention/*.ipynb', recursive=True):\n"
        "    for c in json.load(open(p))['cells']:\n"
        "        if 'def scaled_dot_product_attention' in ''.join(c['source']):\n"
        "            exec(''.join(c['source']))"),
    "writes_gradebook": (
        "import glob, sqlite3\nfor p in glob.glob('/**/gradebook.db', recursive=True):\n"
        "    db = sqlite3.connect(p); db.execute('update grade set auto_score = 3000'); db.commit()"),
    "reads_other_students": (
        "import glob\nstolen = glob.glob('/**/submitted/**/*.ipynb', recursive=True)\n"
        "assert not stolen, stolen"),
    "detects_grader_environment": (
        "import os\nif os.environ.get('NBGRADER_EXECUTION') == 'autograde':\n"
        "    import torch\n    torch.allclose = lambda *a, **k: True"),
    "network_exfiltration": (
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 80), timeout=2).send(b'x')\n"
        "except OSError:\n    pass"),
    "writes_into_notebook_folder": "open('scaled_attention.ipynb', 'w').write('{}')",
    "forged_worker_replies": (
        "import os, json\nfor i in range(100):\n"
        "    os.write(1, (json.dumps({'id': i, 'outputs': [], 'state': None}) + '\\n').encode())"),
    "disk_flood": (
        "import os\ntry:\n    for i in range(10000):\n"
        "        open(f'/tmp/flood{i}', 'wb').write(os.urandom(2**20))\nexcept OSError:\n    pass"),
    "output_flood": "for _ in range(200):\n    print('x' * 100000)",
    "endless_output_flood": "while True:\n    print('x' * 1000000)",
    "memory_bomb": "hog = []\nwhile True:\n    hog.append(bytearray(2**28))",
    "process_bomb": (
        "import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(600)"),
    "timeout_ignoring_sigint": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
    "kernel_exit": "import os\nos._exit(1)",
}
# Graded just before the honest students, on a worker slot (sandbox user,
# runtime folder, nbgrader process) that one of them reuses: a daemon that
# outlived its kernel would kill the next kernel of that user and litter its
# runtime folder.
LINGERING_DAEMON = (
    "import os, signal, sys, time\n"
    "runtime = os.path.dirname(sys.argv[sys.argv.index('-f') + 1])\n"
    "kernel = os.getpid()\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    while os.getppid() == kernel:\n"
    "        time.sleep(0.05)\n"
    "    for i in range(2400):\n"
    "        try:\n"
    "            open(os.path.join(runtime, f'kernel-{i % 8}'), 'w').close()\n"
    "            os.kill(-1, signal.SIGKILL)\n"
    "        except OSError:\n"
    "            pass\n"
    "        time.sleep(0.05)\n"
    "    os._exit(0)")
# Statuses a fault must produce somewhere in its notebook.
FAULTS = {"timeout_ignoring_sigint": {"timeout"}, "kernel_exit": {"crashed"}}


def _tampered(nb, how):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    if how == "edited":
        for c in tests:
            c.source = "pass"
    elif how == "points":
        for c in tests:
            c.metadata.nbgrader["points"] = 1000
    elif how == "unmarked":
        for c in tests:
            del c.metadata["nbgrader"]
    elif how == "deleted":
        nb.cells = [c for c in nb.cells if c not in tests]
    elif how == "duplicated":
        i = nb.cells.index(tests[0])
        copy = nbformat.from_dict(json.loads(json.dumps(tests[0])))
        copy.source, copy.id = "pass", "copy-of-test"
        nb.cells.insert(i, copy)
    return nb


def _secrets() -> dict[str, str]:
    """What no output may show, by name: the reference's last line (the check
    library's source) and the hidden tests of the assignment's source notebook."""
    found = {"reference source": inspect.getsource(reference_attention).splitlines()[-1].strip(),
             "hidden test marker": "BEGIN HIDDEN TESTS"}
    assert found["reference source"].startswith("return F.scaled_dot_product_attention("), found
    solution = nbformat.read(SOLUTIONS / A / learners.NOTEBOOK, as_version=4)
    hidden = {line.strip() for cell in solution.cells for block in HIDDEN.findall(cell.source)
              for line in block.splitlines() if line.strip()}
    assert any(line.startswith("run(checks.") for line in hidden), hidden
    found.update({f"hidden test line {line!r}": line for line in hidden})
    return found


@dataclass
class Batch:
    root: Path                  # the submissions
    before: dict                # their snapshot before grading
    outside: Path               # a folder beside them that their links point into
    outside_before: dict
    tmpdir: Path                # the grader's TMPDIR, empty before grading
    out: Path
    result: CompletedProcess
    rows: list[dict]            # grades_detail.csv
    secrets: dict[str, str]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root, outside, tmpdir = (tmp_path_factory.mktemp(name) for name in ("hostile", "outside", "tmpdir"))
    environment, shadow = secrets.token_hex(16), secrets.token_hex(16)
    (outside / "shadow").write_text(f"root:$6${shadow}:19700:0:99999:7:::\n")
    wrong = learner_notebook(A, WRONG)
    write_submission(root, "a_wrong_baseline", A, wrong)
    for name, code in ATTACKS.items():
        write_submission(root, f"b_{name}", A, with_cell(wrong, code))
    for how in ("edited", "points", "unmarked", "deleted", "duplicated"):
        write_submission(root, f"c_tests_{how}", A, _tampered(wrong, how))
    folder = write_submission(root, "d_torch_py_beside_notebook", A, wrong).parent
    (folder / "torch.py").write_text("def allclose(*a, **k):\n    return True\n")
    (root / "e_not_json" / A).mkdir(parents=True)
    (root / "e_not_json" / A / "scaled_attention.ipynb").write_bytes(b"\x00\xffnot a notebook")
    learners.write_round_two(root, wrong, outside / "shadow")
    write_submission(root, "y_lingering_daemon", A, with_cell(wrong, LINGERING_DAEMON))
    for i in (1, 2):
        write_submission(root, f"z_honest_{i}", A, learner_notebook(A))
    before, outside_before = evidence.snapshot(root), evidence.snapshot(outside)
    out = tmp_path_factory.mktemp("out")
    result = autograder_cli("grade", str(root), "--out", str(out), "--workers", "2",
                            "--limit", "wall_seconds=90", "--limit", f"memory_mb={MEMORY_MB}",
                            "--limit", "cpu_seconds=120", env={"GRADER_CANARY": environment, "TMPDIR": str(tmpdir)})
    with open(out / "grades_detail.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return Batch(root, before, outside, outside_before, tmpdir, out, result, rows,
                 {**_secrets(), "environment variable": environment, "file outside the submissions": shadow})


def _scores(rows):
    totals = {}
    for r in rows:
        totals[r["student_id"]] = totals.get(r["student_id"], 0.0) + float(r["score"])
    return totals


def _printed(out: Path, student: str) -> str:
    """What the cells of a student's autograded notebook printed."""
    nb = nbformat.read(out / "autograded" / student / A / learners.NOTEBOOK, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_the_evidence_finds_what_it_looks_for(tmp_path):
    """The oracles below fail on a planted leak, script, control character, formula or changed link."""
    hidden = "run(checks.sdpa_seed_oracle, scaled_dot_product_attention)"
    highlighted = ('<span class="n">run</span><span class="p">(</span>'
                   'checks.sdpa_seed_oracle, scaled_dot_product_attention)')
    texts = {"feedback/a.html": highlighted, "autograded/a.ipynb": json.dumps({"text": ["\x1b[31mGRADER", "_CANARY"]}),
             "stdout": "ok"}
    assert evidence.leaks(texts, {"hidden": hidden, "env": "GRADER_CANARY", "absent": "nowhere"}) == [
        ("feedback/a.html", "hidden"), ("autograded/a.ipynb", "env")]
    page = ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:">'
            '<img src=x onerror=alert(1)><a href=" JaVa\tScript:alert(2)">x</a><svg><script>alert(3)</script></svg>')
    found = evidence.active_content(page)
    assert len(found.found) == 3 and [evidence.blocks_scripts(p) for p in found.policies] == [True]
    assert not evidence.blocks_scripts("script-src 'self' 'unsafe-inline'") and not evidence.blocks_scripts("img-src *")
    notebook = tmp_path / "n.ipynb"
    nbformat.write(with_cell(learner_notebook(A), nbformat.v4.new_markdown_cell("<b onclick=x>hi</b>")), notebook)
    assert evidence.notebook_active_content(notebook) == ["<b onclick=...>"]
    found = evidence.control_characters({"stdout": "a\tb\n\x1b]0;x\x07", "x": "\u00e9\r\n"})
    assert found == {"stdout": ["\x07", "\x1b"]}
    (tmp_path / "g.csv").write_text("student_id,score\n=HYPERLINK(1),-1\nann,0\n")
    assert evidence.formulas(tmp_path / "g.csv") == ["=HYPERLINK(1)", "-1"]
    (tmp_path / "link").symlink_to(tmp_path / "g.csv")
    before = evidence.snapshot(tmp_path)
    (tmp_path / "link").unlink()
    (tmp_path / "link").symlink_to("/etc/passwd")
    assert evidence.snapshot(tmp_path) != before and evidence.snapshot(tmp_path)["link"] == "-> /etc/passwd"


def test_honest_students_after_the_attacks_get_full_marks(graded):
    for student in ("z_honest_1", "z_honest_2"):
        mine = [r for r in graded.rows if r["student_id"] == student]
        assert mine and all(r["status"] == "passed" and r["score"] == r["max_score"] for r in mine), mine


@pytest.mark.parametrize("student", ["b_" + n for n in ATTACKS]
                         + ["c_tests_" + h for h in ("edited", "points", "unmarked", "deleted", "duplicated")]
                         + ["d_torch_py_beside_notebook", "e_not_json", *learners.GRADED, "y_lingering_daemon"])
def test_attack_scores_no_more_than_the_wrong_implementation(graded, student):
    scores = _scores(graded.rows)
    assert 0 < scores["a_wrong_baseline"] < 11
    assert scores[student] <= scores["a_wrong_baseline"], [r for r in graded.rows if r["student_id"] == student]


def test_every_folder_is_graded_but_the_twin_nbgrader_would_merge(graded):
    folders = {p.name for p in graded.root.iterdir()}
    assert {r["student_id"] for r in graded.rows} == folders - {learners.EVE_TWIN}
    with open(graded.out / "grades.csv", newline="") as fh:
        assert {r["student_id"] for r in csv.DictReader(fh)} == folders - {learners.EVE_TWIN}
    assert any("skipped" in line and learners.EVE in line for line in graded.result.stdout.splitlines())


def test_faults_get_their_status(graded):
    rows = graded.rows
    for name, statuses in FAULTS.items():
        seen = {r["status"] for r in rows if r["student_id"] == f"b_{name}"}
        assert seen & statuses, (name, seen)
    for student in ["e_not_json", *learners.REFUSED]:
        assert {r["status"] for r in rows if r["student_id"] == student} == {"error"}, student
    tampered = {r["student_id"] for r in rows if r["status"] == "tampered"}
    assert {"c_tests_edited", "c_tests_deleted", "c_tests_duplicated", "c_tests_unmarked"} <= tampered
    # An attack is the learner's fault: never "the grader failed" (which a rerun with --resume would retry).
    blamed = {r["student_id"] for r in rows if r["review"].startswith("the grader failed")}
    assert not blamed, blamed


def test_scores_are_capped_and_the_gradebook_agrees(graded):
    assert all(float(r["score"]) <= float(r["max_score"]) for r in graded.rows)
    with open(graded.out / "grades.csv", newline="") as fh:
        exported = {r["student_id"]: float(r["score"]) for r in csv.DictReader(fh)}
    assert exported == pytest.approx(_scores(graded.rows))


def test_nothing_outside_the_output_folder_changes(graded):
    assert evidence.snapshot(graded.root) == graded.before
    assert evidence.snapshot(graded.outside) == graded.outside_before
    assert not list(graded.tmpdir.iterdir())


def test_no_secret_reaches_any_output(graded):
    texts = evidence.outputs(graded.out, graded.result.stdout, graded.result.stderr)
    pages = [name for name in texts if name.startswith("feedback/") and name.endswith(".html")]
    assert len(pages) == len({(r["student_id"], r["assignment"]) for r in graded.rows})
    assert not evidence.leaks(texts, graded.secrets)


def test_no_output_carries_active_content(graded):
    pages = sorted((graded.out / "feedback").rglob("*.html"))
    assert len(pages) == len({(r["student_id"], r["assignment"]) for r in graded.rows})
    found = {str(p.relative_to(graded.out)): evidence.active_content(p.read_text()).found for p in pages}
    notebooks = sorted((graded.out / "autograded").rglob("*.ipynb"))
    found.update({str(p.relative_to(graded.out)): evidence.notebook_active_content(p) for p in notebooks})
    assert not {name: what for name, what in found.items() if what}


def test_feedback_pages_forbid_scripts(graded):
    for page in (graded.out / "feedback").rglob("*.html"):
        policies = evidence.active_content(page.read_text()).policies
        assert policies and all(evidence.blocks_scripts(p) for p in policies), (page, policies)


def test_no_control_character_in_any_output(graded):
    texts = evidence.outputs(graded.out, graded.result.stdout, graded.result.stderr)
    assert not evidence.control_characters(texts)


def test_no_csv_cell_is_a_formula(graded):
    tables = sorted(graded.out.glob("*.csv"))
    assert {"grades.csv", "grades_detail.csv"} <= {p.name for p in tables}
    for table in tables:
        assert not evidence.formulas(table), table.name


def test_memory_is_bounded_for_the_submission_as_a_whole(graded):
    """Four forked children asked for 1 GiB each: together they held less than
    the memory limit, or the submission was stopped as a whole."""
    statuses = {r["status"] for r in graded.rows if r["student_id"] == learners.MEMORY}
    if not (graded.out / "autograded" / learners.MEMORY).exists():
        assert statuses == {"crashed"}, statuses
        return
    total = re.search(r"(\d+) MiB in total", _printed(graded.out, learners.MEMORY))
    assert total and int(total.group(1)) < MEMORY_MB, _printed(graded.out, learners.MEMORY)[-2000:]


def test_runtime_folder_is_bounded(graded):
    written = re.search(r"wrote (\d+) MiB into the runtime folder", _printed(graded.out, learners.RUNTIME))
    assert written and int(written.group(1)) < 256, _printed(graded.out, learners.RUNTIME)[-2000:]


def test_sandbox_is_recorded(graded):
    assert {r["sandbox"] for r in graded.rows} == {"bubblewrap"}
