"""An nbgrader instructor's whole term, through nbgrader's own commands, on a
copy of the course: release, the exchange (release_assignment, fetch_assignment,
submit, collect), grading what was collected in place, manual grading with
nbgrader's Gradebook (as the formgrader does it), a late submission, a test
fixed and an exercise added after release, regrading one learner, and export.
Each step asserts what an instructor would check."""
import csv
import datetime
import json
import shutil
import subprocess
import sys
import time
import zipfile

import nbformat
import pytest
from nbgrader.api import Gradebook

import gradebatch
from autograder.course import REPO, nbgrader_env
from submissions import learner_notebook

A = "03_scaled_attention"
NB = "scaled_attention.ipynb"
SDPA = "scaled_dot_product_attention"
TRUSTED = {"test_sdpa_shapes": 1, "test_sdpa_hand_example": 1, "test_sdpa_matches_builtin": 3,
           "test_self_attention_v1": 2, "test_self_attention_v2": 2, "test_score_std": 2}
ANSWER = "Dividing by sqrt(d_k) keeps the scores' variance at 1, so the softmax does not saturate."
# A plain nbgrader test cell (no trusted check): its hidden part scores by its numeric output.
PLAIN_TEST = """out, w = scaled_dot_product_attention(torch.ones(1, 3, 4), torch.ones(1, 3, 4), torch.ones(1, 3, 4))
assert out.shape == (1, 3, 4)
### BEGIN HIDDEN TESTS
q = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))
out, w = scaled_dot_product_attention(q, q, q)
float(w.shape == (2, 3, 3)) + float(torch.allclose(w.sum(-1), torch.ones(2, 3)))
### END HIDDEN TESTS"""


def _nbgrader_cell(cell, grade_id, points=None, **roles):
    cell.metadata["nbgrader"] = {"grade": False, "solution": False, "locked": False, "grade_id": grade_id,
                                 "schema_version": 3, **roles}
    if points is not None:
        cell.metadata.nbgrader["points"] = points
    return cell


class Term:
    """The course copy, its exchange and the learners' home folders."""

    def __init__(self, root):
        self.course, self.exchange, self.homes = root / "course", root / "exchange", root / "homes"
        ignore = shutil.ignore_patterns("__pycache__", "demo")
        shutil.copytree(REPO / "autograder", self.course / "autograder", ignore=ignore)
        for folder in ("solutions", "exercises"):
            shutil.copytree(REPO / folder / A, self.course / folder / A)
        for name in ("nbgrader_config.py", "course.toml"):
            shutil.copy(REPO / name, self.course / name)
        self.exchange.mkdir()
        self.env = {**nbgrader_env(), "PYTHONPATH": str(self.course)}

    @property
    def out(self):
        return self.course / "_grading"

    @property
    def source(self):
        return self.course / "solutions" / A / NB

    def run(self, *argv, cwd=None, check=True):
        result = subprocess.run(argv, cwd=cwd or self.course, env=self.env, capture_output=True, text=True,
                                timeout=1800)
        if check:
            assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        return result

    def autograder(self, *args, check=True):
        return self.run(sys.executable, "-m", "autograder", *args, check=check)

    def nbgrader(self, *args, cwd=None):
        exchange = [f"--Exchange.root={self.exchange}", "--CourseDirectory.course_id=attention-course"]
        return self.run(sys.executable, "-m", "nbgrader", *args, *exchange, cwd=cwd)

    def hand_in(self, student, edits=None, answer=ANSWER):
        """The learner's side: fetch the released assignment, answer it, submit."""
        home = self.homes / student
        home.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(home / A, ignore_errors=True)
        self.nbgrader("fetch_assignment", A, cwd=home)
        fetched = home / A / NB
        nbformat.write(self.answered(fetched, edits, answer), fetched)
        self.nbgrader("submit", A, f"--CourseDirectory.student_id={student}", cwd=home)

    def answered(self, released, edits=None, answer=ANSWER):
        """The notebook ``released`` with every exercise done (``edits`` to the solutions)."""
        nb = learner_notebook(A, edits, released=released, solutions=self.course / "solutions")
        for cell in nb.cells:
            if cell.cell_type == "markdown" and cell.metadata.get("nbgrader", {}).get("solution"):
                cell.source = answer
        return nb

    def detail(self):
        """grades_detail.csv as {(student, grade_id): row}."""
        with open(self.out / "grades_detail.csv", newline="") as fh:
            return {(r["student_id"], r["grade_id"]): r for r in csv.DictReader(fh)}

    def grades(self, name="grades.csv"):
        with open(self.out / name, newline="") as fh:
            return {r["student_id"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    return Term(tmp_path_factory.mktemp("term"))


def test_1_author_and_release(term):
    """The instructor adds a written answer and a plain nbgrader test, and releases."""
    nb = nbformat.read(term.source, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("Why divide the scores by sqrt(d_k)? (2 points)"))
    nb.cells.append(_nbgrader_cell(nbformat.v4.new_markdown_cell(ANSWER), "explain_scaling", 2,
                                   grade=True, solution=True))
    nb.cells.append(_nbgrader_cell(nbformat.v4.new_code_cell(PLAIN_TEST), "test_plain_rows", 2,
                                   grade=True, locked=True))
    nbformat.write(nb, term.source)
    ledger = term.course / "autograder" / "releases.json"
    before = len(json.loads(ledger.read_text())[A])
    result = term.autograder("release", A)
    assert f"{A}: test cell(s) test_plain_rows run no trusted check" in result.stdout
    released = (term.course / "exercises" / A / NB).read_text()
    assert "YOUR ANSWER HERE" in released and "BEGIN HIDDEN TESTS" not in released
    assert len(json.loads(ledger.read_text())[A]) == before + 1


def test_2_exchange_an_exercise_added_after_release_and_collect(term):
    term.nbgrader("release_assignment", A)
    term.hand_in("alice")
    term.hand_in("bob", {SDPA: [("return weights @ values, weights", "return weights @ values, scores")]})
    # An exercise added once some learners have handed in (nbgrader itself refuses to add
    # cells to a notebook whose submissions are already in the gradebook).
    nb = nbformat.read(term.source, as_version=4)
    nb.cells.append(_nbgrader_cell(nbformat.v4.new_code_cell(
        "def answer():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION"), "answer", solution=True))
    nb.cells.append(_nbgrader_cell(nbformat.v4.new_code_cell("assert answer() == 42"), "test_answer", 1,
                                   grade=True, locked=True))
    nbformat.write(nb, term.source)
    term.autograder("release", A)
    term.nbgrader("release_assignment", A, "--force")
    term.nbgrader("collect", A)
    for student in ("alice", "bob"):
        folder = term.out / "submitted" / student / A
        assert (folder / NB).exists() and (folder / "timestamp.txt").exists()
    # The zip_collect recipe on a Canvas "Download Submissions" zip: NAME_USERID_SUBMISSIONID_FILE,
    # a resubmission renamed FILE-1.ipynb.
    archive = term.course / "downloaded" / A / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "submissions.zip", "w") as zf:
        zf.writestr("erinsmith_4242_99871_scaled_attention-1.ipynb",
                    nbformat.writes(term.answered(term.course / "exercises" / A / NB)))
    term.nbgrader("zip_collect", A)
    assert (term.out / "submitted" / "4242" / A / NB).exists()


def test_3_grade_what_was_collected_in_place(term):
    collected = term.out / "submitted"
    before = gradebatch.digest(collected)
    result = term.autograder("grade", "--workers", "2")
    assert "grading what nbgrader collected in _grading/submitted" in result.stdout
    assert gradebatch.digest(collected) == before  # nothing handed in is modified or deleted
    detail = term.detail()
    for grade_id, points in TRUSTED.items():
        assert (detail["alice", grade_id]["score"], detail["alice", grade_id]["verdict"]) == (f"{points}", "trusted")
    assert [detail["alice", "explain_scaling"][k] for k in ("score", "status", "verdict")] == ["0", "manual", ""]
    assert [detail["alice", "test_plain_rows"][k] for k in ("score", "status", "verdict")] == ["2", "passed", "kernel"]
    assert [detail["bob", "test_plain_rows"][k] for k in ("score", "status", "verdict")] == ["1", "failed", "kernel"]
    assert detail["bob", "test_sdpa_shapes"]["status"] == "failed"
    new = detail["alice", "test_answer"]  # alice's notebook is of the release before the exercise
    assert (new["status"], new["score"]) == ("missing", "0")
    assert "not in the release this notebook was made from" in new["review"]
    assert not [r for r in detail.values() if r["status"] == "tampered"]
    with Gradebook(f"sqlite:///{term.out / 'gradebook.db'}") as gb:
        answer = gb.find_grade("explain_scaling", "scaled_attention", A, "alice")
        assert answer.needs_manual_grade and answer.auto_score is None
    page = gradebatch.feedback(term.out, "alice", A).replace("\n", " ")
    assert "this answer is graded by your instructor (not graded yet)" in page
    assert detail["4242", "test_answer"]["status"] == "passed"  # from the zip, of the latest release
    assert "class: 3 submission(s)" in result.stdout and f"{A}: mean" in result.stdout


def test_4_manual_grading_in_the_gradebook(term):
    """As the formgrader does: a written answer scored, a failed cell overridden, comments."""
    with Gradebook(f"sqlite:///{term.out / 'gradebook.db'}") as gb:
        gb.find_grade("explain_scaling", "scaled_attention", A, "alice").manual_score = 2
        gb.find_grade("test_sdpa_shapes", "scaled_attention", A, "bob").manual_score = 1
        gb.find_comment("explain_scaling", "scaled_attention", A, "alice").manual_comment = "Clear and right."
        gb.db.commit()


def test_5_a_late_submission_and_a_regrade_that_keeps_manual_grades(term):
    due = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    (term.course / "course.toml").write_text(
        f'[late]\npenalty_method = "zero"\n[due]\n{A} = {due.isoformat()}\n')
    time.sleep(1.5)
    term.hand_in("carol")
    term.nbgrader("collect", A)
    result = term.autograder("grade", "--workers", "2")
    detail = term.detail()
    alice = detail["alice", "explain_scaling"]
    assert (alice["score"], alice["status"], alice["verdict"]) == ("2", "manual", "instructor")
    bob = detail["bob", "test_sdpa_shapes"]
    assert (bob["score"], bob["verdict"]) == ("1", "instructor")
    assert "the instructor's score replaces the automatic 0" in bob["review"]
    assert "your instructor scored it 2 / 2" in gradebatch.feedback(term.out, "alice", A).replace("\n", " ")
    with Gradebook(f"sqlite:///{term.out / 'gradebook.db'}") as gb:
        assert gb.find_comment("explain_scaling", "scaled_attention", A, "alice").manual_comment == "Clear and right."
        assert not gb.find_grade("explain_scaling", "scaled_attention", A, "alice").needs_manual_grade
    late = detail["carol", "late"]
    raw = sum(float(r["score"]) for (s, g), r in detail.items() if s == "carol" and g != "late")
    assert raw > 0 and (late["status"], float(late["score"])) == ("late", -raw)
    carol_line = next(line for line in result.stdout.splitlines() if line.startswith("carol"))
    assert f"after the due date (penalty {raw:g})" in carol_line
    grades = term.grades()
    assert (float(grades["carol"]["raw_score"]), float(grades["carol"]["late_submission_penalty"]),
            float(grades["carol"]["score"])) == (raw, raw, 0.0)
    assert float(grades["alice"]["late_submission_penalty"]) == 0 and float(grades["alice"]["score"]) == 15


def test_6_a_test_fixed_after_release_is_not_tampering(term):
    nb = nbformat.read(term.source, as_version=4)
    shapes = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_sdpa_shapes")
    shapes.source += "\n# (a clearer message, fixed after release)"
    nbformat.write(nb, term.source)
    term.autograder("release", A)
    term.nbgrader("release_assignment", A, "--force")
    result = term.autograder("grade", "--workers", "2")
    detail = term.detail()
    for student in ("alice", "carol"):  # made from the two earlier releases
        row = detail[student, "test_sdpa_shapes"]
        assert row["status"] == "passed" and "as an earlier release had it" in row["review"], row
    assert detail["carol", "test_answer"]["status"] == "passed"
    assert not [r for r in detail.values() if r["status"] == "tampered"] and "tampered" not in result.stdout


def test_7_regrade_one_learner(term):
    term.hand_in("dave")
    term.nbgrader("collect", A)
    before = term.detail()
    result = term.autograder("grade", "--student", "dave")
    assert "graded 1 submission(s)" in result.stdout
    detail = term.detail()
    assert {s for s, _ in detail} == {"alice", "bob", "carol", "dave", "4242"}
    assert {k: v for k, v in detail.items() if k[0] != "dave"} == {k: v for k, v in before.items() if k[0] != "dave"}
    assert detail["dave", "test_answer"]["status"] == "passed"
    assert detail["dave", "late"]["status"] == "late"  # handed in after the due date too


def test_8_export(term):
    exported = term.course / "nbgrader_export.csv"
    term.nbgrader("export", f"--to={exported}")
    with open(exported, newline="") as fh:
        stock = {r["student_id"]: float(r["score"]) for r in csv.DictReader(fh)}
    ours = {s: float(r["score"]) for s, r in term.grades().items()}
    assert stock == ours and set(ours) == {"alice", "bob", "carol", "dave", "4242"}
    wide = term.grades("grades_wide.csv")
    assert set(wide) == set(ours)
    assert {s: float(r[A]) for s, r in wide.items()} == ours
    assert list(next(iter(wide.values())))[:4] == ["student_id", "email", "last_name", "first_name"]


def test_make_clean_keeps_the_term():
    """`make clean` removes only what is rebuilt: never the gradebook or collected work."""
    dry = subprocess.run(["make", "-n", "clean"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    removed = [word for line in dry.splitlines() if line.startswith("rm ") for word in line.split()[2:]]
    assert removed and not [w for w in removed if w.rstrip("/") in ("_grading", "_grading/submitted")
                            or "gradebook" in w or w.startswith("_grading/grades")]

