"""Intake on hostile folders and zips: links are never followed, special files
never opened, malformed notebooks and ids become statuses or skipped lines, and
the submissions folder is never changed (every test compares a digest of it,
taken without following links, before and after)."""
import copy
import hashlib
import json
import os
import signal
import socket
import stat
import zipfile

import nbformat
import pytest
from nbgrader.converters import Autograde
from nbgrader.coursedir import CourseDirectory
from nbgrader.nbgraderformat import MetadataValidator
from nbgrader.preprocessors import OverwriteCells
from nbgrader.utils import parse_utc

from autograder import intake
from autograder.course import NOTEBOOKS, REPO, SOLUTIONS
from autograder.intake import IntakeError, collect, unpack
from submissions import learner_notebook, write_submission

A = "03_scaled_attention"
NB = f"{NOTEBOOKS[A]}.ipynb"
SOLUTION = SOLUTIONS / A / NB
SECRET = "SECRET-LINE-THAT-MUST-NEVER-SHOW"


def digest(root):
    """Every entry under ``root`` (links and special files as themselves, never followed)."""
    seen = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as fh:
                    what = hashlib.sha256(fh.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(path)
            else:
                what = ""
            seen[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime_ns, what)
    return seen


def run(root, out, assignments=None):
    """collect() on ``root``, checking that nothing under it changed; submissions by student."""
    before = digest(root)
    subs, skipped = collect(root, assignments, out / "submitted")
    assert digest(root) == before
    return {(s.student, s.assignment): s for s in subs}, skipped


def copied(out, student, name=NB):
    return out / "submitted" / student / A / name


def notebook_dict():
    return json.loads(nbformat.writes(learner_notebook(A)))


def cell_index(nb, grade_id):
    return next(i for i, c in enumerate(nb["cells"]) if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)


def write_raw(root, student, text):
    folder = root / student / A
    folder.mkdir(parents=True, exist_ok=True)
    (folder / NB).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "elsewhere" / "secret.txt"
    path.parent.mkdir()
    path.write_text(SECRET + "\n")
    return path


def test_links_to_files_outside_are_refused_without_reading_them(tmp_path, secret_file):
    root, out = tmp_path / "class", tmp_path / "out"
    (root / "alice" / A).mkdir(parents=True)
    (root / "alice" / A / NB).symlink_to(SOLUTION)  # would score full marks if followed
    folder = write_submission(root, "bob", A, learner_notebook(A)).parent
    (folder / "timestamp.txt").symlink_to(secret_file)
    folder = write_submission(root, "carol", A, learner_notebook(A)).parent
    (folder / "notes.txt").symlink_to(secret_file)  # even an extra file that is never copied
    write_submission(root, "zed", A, learner_notebook(A))
    subs, _ = run(root, out)
    for student, name in (("alice", NB), ("bob", "timestamp.txt"), ("carol", "notes.txt")):
        sub = subs[student, A]
        assert sub.status == "error" and f"{name} is a symbolic link" in sub.problem, sub
        assert SECRET not in sub.problem + "".join(sub.notes) and sub.path is None
        assert not copied(out, student).parent.exists()
    assert subs["zed", A].status is None and copied(out, "zed").exists()


def test_linked_student_and_assignment_folders_are_refused(tmp_path):
    root, out, elsewhere = tmp_path / "class", tmp_path / "out", tmp_path / "elsewhere"
    write_submission(elsewhere, "someone", A, learner_notebook(A))
    root.mkdir()
    (root / "mallory").symlink_to(elsewhere / "someone")
    (root / "alice").mkdir()
    (root / "alice" / A).symlink_to(elsewhere / "someone" / A)
    write_submission(root, "zed", A, learner_notebook(A))
    subs, skipped = run(root, out)
    assert not [key for key in subs if key[0] == "mallory"]
    assert [line for line in skipped if line.startswith("mallory: a symbolic link")], skipped
    assert subs["alice", A].status == "error" and f"{A} is a symbolic link" in subs["alice", A].problem
    assert not copied(out, "alice").parent.exists() and not (out / "submitted" / "mallory").exists()
    assert subs["zed", A].status is None


def test_fifos_and_sockets_are_refused_without_blocking(tmp_path):
    root, out = tmp_path / "class", tmp_path / "out"
    (root / "alice" / A).mkdir(parents=True)
    os.mkfifo(root / "alice" / A / NB)  # opening it to read would wait for a writer forever
    folder = write_submission(root, "bob", A, learner_notebook(A)).parent
    os.mkfifo(folder / "timestamp.txt")
    folder = write_submission(root, "carol", A, learner_notebook(A)).parent
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(folder / "kernel.sock"))
        signal.signal(signal.SIGALRM, lambda *_: pytest.fail("intake blocked on a special file"))
        signal.alarm(30)
        try:
            subs, _ = run(root, out)
        finally:
            signal.alarm(0)
    for student, name, kind in (("alice", NB, "FIFO"), ("bob", "timestamp.txt", "FIFO"),
                                ("carol", "kernel.sock", "socket")):
        assert subs[student, A].status == "error" and f"{name} is a {kind}" in subs[student, A].problem


def test_a_notebook_larger_than_the_bound_is_refused(tmp_path, monkeypatch):
    root, out = tmp_path / "class", tmp_path / "out"
    path = write_submission(root, "alice", A, learner_notebook(A))
    monkeypatch.setattr(intake, "MAX_NOTEBOOK_BYTES", path.stat().st_size - 1)
    subs, _ = run(root, out)
    assert subs["alice", A].status == "error" and f"{NB} is larger than" in subs["alice", A].problem
    monkeypatch.setattr(intake, "MAX_NOTEBOOK_BYTES", path.stat().st_size)
    subs, _ = run(root, out)
    assert subs["alice", A].status is None


def _zip_link(zf, name, target):
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    zf.writestr(info, target)


def test_a_zip_link_entry_is_refused(tmp_path):
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"submitted/zed/{A}/{NB}", nbformat.writes(learner_notebook(A)))
        _zip_link(zf, f"submitted/alice/{A}/{NB}", str(SOLUTION))
        _zip_link(zf, "submitted/mallory", str(SOLUTIONS))
    root = unpack(archive, tmp_path / "scratch")
    assert root == tmp_path / "scratch" / "submitted"
    subs, skipped = run(root, tmp_path / "out")
    assert subs["alice", A].status == "error" and f"{NB} is a symbolic link" in subs["alice", A].problem
    assert [line for line in skipped if line.startswith("mallory: a symbolic link")], skipped
    assert subs["zed", A].status is None


def test_a_zip_link_entry_never_lets_another_entry_through_it(tmp_path):
    archive = tmp_path / "class.zip"
    outside = tmp_path / "outside"
    outside.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        _zip_link(zf, f"alice/{A}", str(outside))
        zf.writestr(f"alice/{A}/{NB}", "{}")
    with pytest.raises(IntakeError, match="link entry where another entry is"):
        unpack(archive, tmp_path / "scratch")
    assert list(outside.iterdir()) == []


def _set(path, value):
    """A mutation of the notebook dict setting ``path`` (keys) to ``value``; ``...`` deletes."""
    def mutate(nb, i):
        *keys, last = [i if k == "CELL" else k for k in path]
        node = nb
        for key in keys:
            node = node[key]
        if value is ...:
            del node[last]
        else:
            node[last] = value
    return mutate


TEST_CELL = "test_sdpa_shapes"
MARKS = ("cells", "CELL", "metadata", "nbgrader")
MALFORMED = {  # name -> (grade_id of the cell to break, mutation, phrase the problem must contain)
    "nbgrader metadata is a list": (TEST_CELL, _set(MARKS, ["grade"]), "the nbgrader metadata is list"),
    "nbgrader metadata is a string": (TEST_CELL, _set(MARKS, "grade"), "the nbgrader metadata is str"),
    "grade_id is a number": (TEST_CELL, _set(MARKS + ("grade_id",), 7), "field 'grade_id'"),
    "grade_id is a list": (TEST_CELL, _set(MARKS + ("grade_id",), ["a"]), "field 'grade_id'"),
    "grade_id is empty": (TEST_CELL, _set(MARKS + ("grade_id",), ""), "grade_id is empty"),
    "grade_id is missing": (TEST_CELL, _set(MARKS + ("grade_id",), ...), "does not have a grade_id"),
    "points is text": (TEST_CELL, _set(MARKS + ("points",), "three"), "field 'points'"),
    "points is negative": (TEST_CELL, _set(MARKS + ("points",), -1), "field 'points'"),
    "points is missing": (TEST_CELL, _set(MARKS + ("points",), ...), "does not have points"),
    "grade is text": (TEST_CELL, _set(MARKS + ("grade",), "yes"), "field 'grade'"),
    "solution is null": ("scaled_dot_product_attention", _set(MARKS + ("solution",), None), "field 'solution'"),
    "schema_version is missing": (TEST_CELL, _set(MARKS + ("schema_version",), ...), "'schema_version'"),
    "schema_version is text": (TEST_CELL, _set(MARKS + ("schema_version",), "3"), "field 'schema_version'"),
    "schema_version is old": (TEST_CELL, _set(MARKS + ("schema_version",), 2), "field 'schema_version'"),
    "an unknown field": (TEST_CELL, _set(MARKS + ("owner",), "me"), "'owner' was unexpected"),
    "task on a code cell": (TEST_CELL, _set(MARKS + ("task",), True), "Task cells have to be markdown"),
    "a grade_id the release lacks": (TEST_CELL, _set(MARKS + ("grade_id",), "test_mine"),
                                     "the released notebook has no cell with this grade_id"),
    "a test cell no longer graded": (TEST_CELL, _set(MARKS + ("grade",), False),
                                     "field 'grade' is false; the released cell has true"),
    "a solution cell made graded": ("scaled_dot_product_attention",
                                    lambda nb, i: nb["cells"][i]["metadata"]["nbgrader"].update(grade=True, points=1),
                                    "field 'grade' is true; the released cell has false"),
    "cell metadata is a list": (TEST_CELL, _set(("cells", "CELL", "metadata"), []), "metadata: [] is not of type"),
    "cell source is a number": (TEST_CELL, _set(("cells", "CELL", "source"), 5), "source:"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_nbgrader_metadata_is_an_error_naming_cell_and_field(tmp_path, case):
    grade_id, mutate, phrase = MALFORMED[case]
    nb = notebook_dict()
    i = cell_index(nb, grade_id)
    mutate(nb, i)
    root, out = tmp_path / "class", tmp_path / "out"
    write_raw(root, "alice", json.dumps(nb))
    write_submission(root, "zed", A, learner_notebook(A))
    subs, _ = run(root, out)
    sub = subs["alice", A]
    assert sub.status == "error" and f"cell {i + 1}" in sub.problem and phrase in sub.problem, sub.problem
    assert not copied(out, "alice").exists()
    assert subs["zed", A].status is None


def test_a_code_cell_turned_markdown_with_attachments_is_an_error(tmp_path):
    nb = notebook_dict()
    i = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and c["metadata"].get("nbgrader", {}).get("locked") and not c["metadata"]["nbgrader"]["grade"])
    cell = nb["cells"][i]
    nb["cells"][i] = {"cell_type": "markdown", "id": cell["id"], "metadata": cell["metadata"],
                      "source": cell["source"], "attachments": {}}
    root = tmp_path / "class"
    write_raw(root, "alice", json.dumps(nb))
    subs, _ = run(root, tmp_path / "out")
    assert subs["alice", A].status == "error" and f"cell {i + 1}" in subs["alice", A].problem
    assert "nbgrader cannot turn back" in subs["alice", A].problem
    with pytest.raises(nbformat.ValidationError):  # the oracle: nbgrader's own restoring of the cell type
        OverwriteCells().update_cell_type(nbformat.from_dict(nb["cells"][i]), "code")


@pytest.mark.parametrize("text, phrase", [
    ('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5, "x": NaN}', "NaN is not a JSON number"),
    ("[1, 2]", "a JSON list, not an object"),
    ('{"cells": 5, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}', "not a valid notebook"),
    ('{"cells": [], "metadata": {}, "nbformat": 99, "nbformat_minor": 0}', "not a valid notebook"),
    ('{"cells": [', "JSONDecodeError"),
])
def test_what_is_not_a_notebook_is_an_error(tmp_path, text, phrase):
    root = tmp_path / "class"
    write_raw(root, "alice", text)
    (root / "bob" / A).mkdir(parents=True)
    (root / "bob" / A / NB).write_bytes(b"\xff\xfe not UTF-8")
    subs, _ = run(root, tmp_path / "out")
    assert subs["alice", A].status == "error" and phrase in subs["alice", A].problem, subs["alice", A].problem
    assert subs["bob", A].status == "error" and "UnicodeDecodeError" in subs["bob", A].problem


def test_duplicate_ids_keep_the_last_cell_and_nbgrader_validates_the_copy(tmp_path):
    nb = notebook_dict()
    i = cell_index(nb, TEST_CELL)
    first = copy.deepcopy(nb["cells"][i])
    first["id"], first["source"] = "a-copy", "pass  # a copy"
    nb["cells"].insert(i, first)
    root, out = tmp_path / "class", tmp_path / "out"
    write_raw(root, "alice", json.dumps(nb))
    subs, _ = run(root, out)
    sub = subs["alice", A]
    assert sub.status is None and sub.sources[TEST_CELL] == ["pass  # a copy", "".join(nb["cells"][i + 1]["source"])]
    result = nbformat.read(copied(out, "alice"), as_version=4)
    MetadataValidator().validate_nb(result)  # nbgrader's own check: raises on a duplicate grade_id
    assert "nbgrader" not in result.cells[i].metadata and result.cells[i + 1].metadata.nbgrader["grade_id"] == TEST_CELL


@pytest.mark.parametrize("metadata", [[], "x", {"nbgrader": []}, {"nbgrader": {"grade_id": ["unhashable"]}},
                                      {"nbgrader": {"grade_id": 3}}, {"nbgrader": None}])
def test_removing_duplicates_never_raises(metadata):
    nb = nbformat.from_dict({"cells": [{"cell_type": "code", "metadata": metadata, "source": ""},
                                       {"cell_type": "code", "metadata": {"nbgrader": {"grade_id": "a"}}},
                                       {"cell_type": "code", "metadata": {"nbgrader": {"grade_id": "a"}}}]})
    cells = intake._without_duplicate_ids(nb).cells
    assert cells[0].metadata == metadata and "nbgrader" not in cells[1].metadata and "nbgrader" in cells[2].metadata


def test_student_ids_are_the_ids_nbgrader_reads_back(tmp_path):
    root, out = tmp_path / "class", tmp_path / "out"
    good = ["alice", "b.o-b_2@uni", "0xff"]
    bad = ["alice\n", "alice ", " alice", "-x", "a*b", "a[1]", "a\tb", "ümlaut", "a\\b"]
    for student in good + bad:
        write_submission(root, student, A, learner_notebook(A))
    subs, skipped = run(root, out)
    assert sorted(s for s, _ in subs) == sorted(good)
    for student in bad:
        assert [line for line in skipped if line.startswith(intake._shown(student) + ": not a usable student id")]
    for student in good:
        # nbgrader's own reading: its trait validation, its glob for the folder and its path regex.
        cd = CourseDirectory(root=str(REPO), submitted_directory=str(out / "submitted"),
                             student_id=student, assignment_id=A)
        assert cd.student_id == student
        converter = Autograde(coursedir=cd)
        converter.init_notebooks()
        assert list(converter.assignments) == [str(out / "submitted" / student / A)]
        resources = converter.init_single_notebook_resources(str(copied(out, student)))
        assert resources["nbgrader"]["student"] == student


@pytest.mark.parametrize("text", ["2026-11-20 17:00:00.000000 UTC", "2024-01-01 12:00:00 America/Los_Angeles",
                                  "2024-03-01T10:00:00+02:00", "2024-01-01 12:00:00"])
def test_a_valid_timestamp_is_copied_as_nbgrader_reads_it(tmp_path, text):
    root, out = tmp_path / "class", tmp_path / "out"
    folder = write_submission(root, "alice", A, learner_notebook(A)).parent
    (folder / "timestamp.txt").write_text(text + "\n")
    subs, _ = run(root, out)
    assert subs["alice", A].status is None and not subs["alice", A].notes
    stored = CourseDirectory().get_existing_timestamp(str(copied(out, "alice").parent))
    assert stored == parse_utc(text)


@pytest.mark.parametrize("content, phrase", [
    (b"not a time at all", "ParserError"),
    (b"2024-13-45 99:99:99", "ParserError"),
    (b"   \n", "empty"),
    (b"2024-01-01 " + b"1" * 300, "larger than 256 bytes"),
    (b"2024-01-01 00:00:00 /etc/localtime", "names a file"),
    (b"2024-01-01 00:00:00 ../../../etc/localtime", "names a file"),
    (b"\xff\xfe", "UnicodeDecodeError"),
])
def test_a_bad_timestamp_is_not_copied_and_noted(tmp_path, content, phrase):
    root, out = tmp_path / "class", tmp_path / "out"
    folder = write_submission(root, "alice", A, learner_notebook(A)).parent
    (folder / "timestamp.txt").write_bytes(content)
    subs, _ = run(root, out)
    sub = subs["alice", A]
    assert sub.status is None and copied(out, "alice").exists() and not copied(out, "alice", "timestamp.txt").exists()
    assert [n for n in sub.notes if phrase in n and "graded as submitted on time" in n], sub.notes


def test_nbgrader_itself_fails_on_the_timestamp_intake_refuses(tmp_path):
    """The oracle for the test above: nbgrader raises on such a file where intake only notes it
    (an AttributeError: nbgrader 0.9.6 calls a ``self.fail`` that CourseDirectory does not have)."""
    (tmp_path / "timestamp.txt").write_text("not a time at all")
    with pytest.raises(AttributeError, match="fail"):
        CourseDirectory().get_existing_timestamp(str(tmp_path))


def test_copies_inside_or_around_the_submissions_are_refused(tmp_path):
    root = tmp_path / "class"
    write_submission(root, "alice", A, learner_notebook(A))
    before = digest(root)
    for submitted in (root, root / "out" / "submitted", root / "alice" / A / "deeper"):
        with pytest.raises(IntakeError, match="would overlap SUBMISSIONS"):
            collect(root, None, submitted)
    # The submissions inside what would be a copy: alice's copy folder would be removed first.
    inner = tmp_path / "out" / "submitted" / "alice" / A / "class"
    write_submission(inner, "alice", A, learner_notebook(A))
    inner_before = digest(inner)
    with pytest.raises(IntakeError, match="would overlap SUBMISSIONS"):
        collect(inner, None, tmp_path / "out" / "submitted")
    # A copy folder that is a link into the submissions.
    linked = tmp_path / "out2" / "submitted"
    linked.mkdir(parents=True)
    (linked / "alice").symlink_to(root / "alice")
    with pytest.raises(IntakeError, match="would overlap SUBMISSIONS"):
        collect(root, None, linked)
    assert digest(root) == before and digest(inner) == inner_before


def test_an_honest_class_is_copied_with_notes_for_extra_files(tmp_path):
    root, out = tmp_path / "class", tmp_path / "out"
    folder = write_submission(root, "alice", A, learner_notebook(A)).parent
    (folder / "torch.py").write_text("x = 1\n")
    (folder / ".ipynb_checkpoints").mkdir()
    (root / "bob" / A).mkdir(parents=True)
    (root / "bob" / A / "Untitled.ipynb").write_text("{}")
    (root / "notes.txt").write_text("not a student")
    subs, skipped = run(root, out)
    assert subs["alice", A].status is None and not copied(out, "alice", "torch.py").exists()
    assert subs["alice", A].notes == ["ignored extra files: .ipynb_checkpoints, torch.py"]
    assert subs["alice", A].path == root / "alice" / A / NB
    assert nbformat.read(copied(out, "alice"), as_version=4).cells == learner_notebook(A).cells
    assert subs["bob", A].status == "missing" and "found: Untitled.ipynb" in subs["bob", A].problem
    assert skipped == ["notes.txt: not a student folder (expected <student_id>/<assignment_id>/)"]


def test_a_notebook_an_lms_renamed_is_graded_when_it_is_the_only_candidate(tmp_path):
    root, out = tmp_path / "class", tmp_path / "out"
    stem = NOTEBOOKS[A]
    write_submission(root, "alice", A, learner_notebook(A)).rename(root / "alice" / A / f"{stem} (1).ipynb")
    write_submission(root, "bob", A, learner_notebook(A)).rename(root / "bob" / A / f"{stem}-2.ipynb")
    folder = write_submission(root, "carol", A, learner_notebook(A)).parent
    (folder / f"{stem} (1).ipynb").write_text("{}")  # beside the real name: ignored
    twice = write_submission(root, "dan", A, learner_notebook(A))
    twice.rename(twice.parent / f"{stem} (1).ipynb")
    (twice.parent / f"{stem} (2).ipynb").write_text("{}")  # two candidates: which one? none
    subs, _ = run(root, out)
    for student, name in (("alice", f"{stem} (1).ipynb"), ("bob", f"{stem}-2.ipynb")):
        assert subs[student, A].status is None and subs[student, A].path.name == name
        assert f"graded {name} as {NB} (the name an LMS gives a resubmission)" in subs[student, A].notes
        assert nbformat.read(copied(out, student), as_version=4).cells == learner_notebook(A).cells
    assert subs["carol", A].status is None and subs["carol", A].notes == [f"ignored extra files: {stem} (1).ipynb"]
    assert subs["dan", A].status == "missing"
