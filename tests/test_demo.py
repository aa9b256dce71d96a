"""`make grade` with no SUBMISSIONS grades the bundled demo class."""
import csv
import subprocess

from autograder.course import REPO, nbgrader_env


def test_make_grade_grades_the_demo_class(tmp_path):
    result = subprocess.run(["make", "grade", f"OUT={tmp_path}"], cwd=REPO, env=nbgrader_env(),
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(tmp_path / "grades.csv", newline="") as fh:
        scores = {r["student_id"]: float(r["score"]) for r in csv.DictReader(fh)}
    # ada: correct; ben: exercise 1 only (5 points); the others carry one mistake each.
    assert scores["ada"] == 11
    assert scores["ben"] == 5
    assert all(0 < scores[s] < 11 for s in ("chen", "dana", "eli", "fay")), scores
    for student in scores:
        assert (tmp_path / "feedback" / student / "03_scaled_attention" / "scaled_attention.html").exists()
    assert (tmp_path / "grades_detail.csv").exists()
