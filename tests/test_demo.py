"""`make grade` with no SUBMISSIONS grades the bundled demo class."""
import csv
import shutil
import subprocess

import gradebatch

from autograder.course import NOTEBOOKS, REPO, nbgrader_env

# (student, assignment) handed in with one typical mistake each
MISTAKEN = {("chen", "03_scaled_attention"), ("dana", "03_scaled_attention"),
            ("eli", "03_scaled_attention"), ("fay", "03_scaled_attention"),
            ("chen", "01_tensors"), ("dana", "02_qkv"), ("eli", "04_masking"), ("fay", "05_multi_head"),
            ("chen", "06_normalization"), ("dana", "07_residual"), ("eli", "08_positional_encoding"),
            ("fay", "09_elmo_bert"), ("ben", "10_transformer")}


def test_make_grade_grades_the_demo_class_into_its_own_folder():
    """Without SUBMISSIONS and OUT the demo class goes to _demo_grading/, and
    the course's own _grading/ (gradebook, collected work) is not touched."""
    course = REPO / "_grading"
    before = gradebatch.digest(course) if course.exists() else None
    shutil.rmtree(REPO / "_demo_grading", ignore_errors=True)
    result = subprocess.run(["make", "grade"], cwd=REPO, env=nbgrader_env(),
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (gradebatch.digest(course) if course.exists() else None) == before
    tmp_path = REPO / "_demo_grading"
    with open(tmp_path / "grades.csv", newline="") as fh:
        rows = {(r["student_id"], r["assignment"]): (float(r["score"]), float(r["max_score"]))
                for r in csv.DictReader(fh)}
    submitted = {(p.parts[-3], p.parts[-2]) for p in (REPO / "autograder" / "demo").glob("*/*/*.ipynb")}
    assert submitted <= set(rows)
    for (student, assignment), (score, max_score) in rows.items():
        if student == "ada":
            assert score == max_score > 0, (assignment, score)  # the correct student
        elif (student, assignment) in MISTAKEN:
            assert 0 < score < max_score, (student, assignment, score)
        elif (student, assignment) == ("ben", "03_scaled_attention"):
            assert score == 5  # exercise 1 only
        else:
            assert (student, assignment) not in submitted and score == 0
        page = tmp_path / "feedback" / student / assignment / f"{NOTEBOOKS[assignment]}.html"
        assert page.exists(), page
    with open(tmp_path / "grades_detail.csv", newline="") as fh:
        statuses = {(r["student_id"], r["assignment"]): r["status"] for r in csv.DictReader(fh)}
    assert statuses[("ben", "01_tensors")] == "missing"
