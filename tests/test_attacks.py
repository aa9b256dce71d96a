"""A hostile class graded in one batch: every attack carries the same wrong
attention (scores divided by d_k) and must score no more than that wrong
implementation alone; honest students graded after them get full marks; no
submitted file changes; faults get their status."""
import csv
import json

import nbformat
import pytest

import gradebatch
from conftest import autograder_cli
from submissions import learner_notebook, write_submission

A = "03_scaled_attention"
SDPA = "scaled_dot_product_attention"
WRONG = {SDPA: [("/ math.sqrt(d_k)", "/ d_k")]}

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


def _with_cell(nb, code):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    i = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == SDPA)
    nb.cells.insert(i + 1, nbformat.v4.new_code_cell(code))
    return nb


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


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    wrong = learner_notebook(A, WRONG)
    write_submission(root, "a_wrong_baseline", A, wrong)
    for name, code in ATTACKS.items():
        write_submission(root, f"b_{name}", A, _with_cell(wrong, code))
    for how in ("edited", "points", "unmarked", "deleted", "duplicated"):
        write_submission(root, f"c_tests_{how}", A, _tampered(wrong, how))
    shadow = write_submission(root, "d_torch_py_beside_notebook", A, wrong).parent
    (shadow / "torch.py").write_text("def allclose(*a, **k):\n    return True\n")
    (root / "e_not_json" / A).mkdir(parents=True)
    (root / "e_not_json" / A / "scaled_attention.ipynb").write_bytes(b"\x00\xffnot a notebook")
    write_submission(root, "y_lingering_daemon", A, _with_cell(wrong, LINGERING_DAEMON))
    for i in (1, 2):
        write_submission(root, f"z_honest_{i}", A, learner_notebook(A))
    before = gradebatch.digest(root)
    out = tmp_path_factory.mktemp("out")
    result = autograder_cli("grade", str(root), "--out", str(out), "--workers", "2",
                            "--limit", "wall_seconds=90", "--limit", "memory_mb=3072", "--limit", "cpu_seconds=120")
    with open(out / "grades_detail.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return root, before, out, result, rows


def _scores(rows):
    totals = {}
    for r in rows:
        totals[r["student_id"]] = totals.get(r["student_id"], 0.0) + float(r["score"])
    return totals


def test_honest_students_after_the_attacks_get_full_marks(graded):
    *_, rows = graded
    for student in ("z_honest_1", "z_honest_2"):
        mine = [r for r in rows if r["student_id"] == student]
        assert mine and all(r["status"] == "passed" and r["score"] == r["max_score"] for r in mine), mine


@pytest.mark.parametrize("student", ["b_" + n for n in ATTACKS]
                         + ["c_tests_" + h for h in ("edited", "points", "unmarked", "deleted", "duplicated")]
                         + ["d_torch_py_beside_notebook", "e_not_json", "y_lingering_daemon"])
def test_attack_scores_no_more_than_the_wrong_implementation(graded, student):
    *_, rows = graded
    scores = _scores(rows)
    assert 0 < scores["a_wrong_baseline"] < 11
    assert scores[student] <= scores["a_wrong_baseline"], (student, [r for r in rows if r["student_id"] == student])


def test_faults_get_their_status(graded):
    *_, rows = graded
    for name, statuses in FAULTS.items():
        seen = {r["status"] for r in rows if r["student_id"] == f"b_{name}"}
        assert seen & statuses, (name, seen)
    assert {r["status"] for r in rows if r["student_id"] == "e_not_json"} == {"error"}
    tampered = {r["student_id"] for r in rows if r["status"] == "tampered"}
    assert {"c_tests_edited", "c_tests_deleted", "c_tests_duplicated", "c_tests_unmarked"} <= tampered


def test_scores_are_capped_and_the_gradebook_agrees(graded):
    _, _, out, _, rows = graded
    assert all(float(r["score"]) <= float(r["max_score"]) for r in rows)
    with open(out / "grades.csv", newline="") as fh:
        exported = {r["student_id"]: float(r["score"]) for r in csv.DictReader(fh)}
    assert exported == pytest.approx(_scores(rows))


def test_no_submitted_file_changes(graded):
    root, before, *_ = graded
    assert gradebatch.digest(root) == before


def test_sandbox_is_recorded(graded):
    *_, rows = graded
    assert {r["sandbox"] for r in rows} == {"bubblewrap"}
