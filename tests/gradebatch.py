"""Grade a class through the real `grade` command and read what it wrote;
shared by the grade tests of every assignment."""
from __future__ import annotations

import csv
import hashlib
import html
from pathlib import Path

from autograder.course import NOTEBOOKS
from conftest import autograder_cli
from submissions import learner_notebook, write_submission

HIDDEN_CODE = ("BEGIN HIDDEN TESTS", "autograder.checks", "run(checks.")


def grade_class(root: Path, out: Path, assignments: list[str], mistakes: dict) -> Path:
    """Per assignment the solution (`z_solution`) and the blank release
    (`y_blank_release`), plus ``mistakes``: {student: {assignment: (edits, [(cell, phrase)])}};
    graded in one batch with two workers."""
    for a in assignments:
        write_submission(root, "z_solution", a, learner_notebook(a))
        write_submission(root, "y_blank_release", a, learner_notebook(a, answered=False))
    for student, by_assignment in mistakes.items():
        for a, (edits, _) in by_assignment.items():
            write_submission(root, student, a, learner_notebook(a, edits))
    flags = [f"--assignment={a}" for a in assignments]
    autograder_cli("grade", str(root), "--out", str(out), *flags, "--workers", "2")
    return out


def mistake_cases(mistakes: dict) -> list[tuple[str, str, str, str]]:
    """(student, assignment, failing cell, phrase its feedback shows) for parametrize."""
    return [(s, a, cell, phrase) for s, by_a in mistakes.items() for a, (_, fails) in by_a.items()
            for cell, phrase in fails]


def detail(out: Path) -> dict[tuple[str, str], dict[str, tuple[float, str]]]:
    """grades_detail.csv as {(student, assignment): {grade_id: (score, status)}}."""
    table: dict = {}
    with open(out / "grades_detail.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            table.setdefault((r["student_id"], r["assignment"]), {})[r["grade_id"]] = (float(r["score"]), r["status"])
    return table


def feedback(out: Path, student: str, assignment: str) -> str:
    """The text of a feedback page, entities unescaped."""
    return html.unescape((out / "feedback" / student / assignment / f"{NOTEBOOKS[assignment]}.html").read_text())


def assert_solution_full_and_blank_zero(out: Path, assignment: str, full: dict[str, float]) -> None:
    table = detail(out)
    solution = table[("z_solution", assignment)]
    assert {g: s for g, (s, _) in solution.items()} == full
    assert all(status == "passed" for _, status in solution.values())
    assert sum(s for s, _ in table[("y_blank_release", assignment)].values()) == 0
    with open(out / "grades.csv", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if (r["student_id"], r["assignment"]) == ("z_solution", assignment))
    assert float(row["score"]) == float(row["max_score"]) == sum(full.values())


def assert_mistake_named(out: Path, student: str, assignment: str, cell: str, phrase: str,
                         statuses=("failed",)) -> None:
    score, status = detail(out)[(student, assignment)][cell]
    assert score == 0 and status in statuses, (score, status)
    assert phrase in feedback(out, student, assignment)


def assert_no_hidden_code(out: Path, pages: int) -> None:
    """No feedback page shows hidden test code, and no autograded notebook
    (what the learner's kernel executed) contains any."""
    found = list((out / "feedback").rglob("*.html"))
    assert len(found) == pages
    executed = list((out / "autograded").rglob("*.ipynb"))
    assert executed
    for page in found + executed:
        text = page.read_text()
        assert not [secret for secret in HIDDEN_CODE if secret in text], page


def digest(root: Path) -> dict[str, str]:
    """A SHA-256 per file under ``root``: compare before and after to prove nothing changed."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
