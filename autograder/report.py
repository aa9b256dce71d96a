"""What a grading run writes: console lines, grades_detail.csv, grades.csv and
feedback pages for submissions nbgrader could not run."""
from __future__ import annotations

import csv
import html
import re
import statistics
from pathlib import Path
from typing import Callable

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import CsvExportPlugin

from .course import gradebook_url
from .feedback import CSP_META
from .printable import escape_controls

# COURSE_SPEC.md's columns: sandbox says how learner code was isolated ("bubblewrap" or "none"),
# review why a person should look at the cell (empty when there is no need); then verdict: who
# decided the score (trusted: a check outside the learner's process; kernel: a plain nbgrader
# test in the learner's kernel; instructor: a score set in the formgrader; empty: nothing ran).
DETAIL_COLUMNS = ["student_id", "assignment", "notebook", "grade_id", "score", "max_score", "status", "sandbox",
                  "review", "verdict"]
# The status (and grade_id) of the row that takes a late penalty off a notebook's cells.
LATE = "late"
# The start of the review of a cell that has no result because the grader itself failed.
GRADER_FAILED = "the grader failed"

# A spreadsheet reads a cell starting with one of these as a formula (OWASP's CSV injection).
FORMULA_START = ("=", "+", "-", "@")
NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def csv_cell(value) -> str:
    """``str(value)`` as safe to open in a spreadsheet: controls escaped
    (:func:`escape_controls`) and, unless it is a number, a leading
    ``=``, ``+``, ``-`` or ``@`` prefixed with ``'``."""
    text = escape_controls(str(value))
    return f"'{text}" if text.startswith(FORMULA_START) and not NUMBER.fullmatch(text) else text


def escaping(log: Callable[[str], None]) -> Callable[[str], None]:
    """``log`` for console lines that may carry a learner's names and messages:
    each line is passed through :func:`escape_controls` first."""
    return lambda line: log(escape_controls(line))


def late_note(outcome) -> str:
    """"submitted 2.5 h after the due date (penalty 11)"."""
    return (f"submitted {outcome.late_seconds / 3600:.1f} h after the due date"
            + (f" (penalty {outcome.penalty:g})" if outcome.penalty else " (no penalty)"))


def summary_line(outcome) -> str:
    """One console line per submission: score, status counts, lateness and problems."""
    sub = outcome.submission
    counts: dict[str, int] = {}
    for cell in outcome.cells:
        counts[cell.status] = counts.get(cell.status, 0) + 1
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    notes = "; ".join(filter(None, [outcome.late_seconds > 0 and late_note(outcome), outcome.problem,
                                    *sub.notes]))
    return escape_controls(f"{sub.student:<16} {sub.assignment:<24} {outcome.score:g}/{outcome.max_score:g}"
                           f"  [{statuses}]" + (f"  {notes}" if notes else ""))


def class_summary(outcomes) -> list[str]:
    """The class at a glance: cells per status, and the mean and median score
    (after late penalties) of each assignment graded in this run."""
    counts: dict[str, int] = {}
    by_assignment: dict[str, list] = {}
    for outcome in outcomes:
        for cell in outcome.cells:
            counts[cell.status] = counts.get(cell.status, 0) + 1
        by_assignment.setdefault(outcome.submission.assignment, []).append(outcome)
    lines = [f"class: {len(outcomes)} submission(s); cells: "
             + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))]
    for assignment, graded in sorted(by_assignment.items()):
        scores = [o.score - o.penalty for o in graded]
        top = max(o.max_score for o in graded)
        lines.append(f"  {assignment}: mean {statistics.mean(scores):.2f} / {top:g}, "
                     f"median {statistics.median(scores):g} / {top:g} ({len(scores)} learner(s))")
    return lines


def write_detail(path: Path, outcomes, sandbox: str, kept: list[dict] = ()) -> None:
    """grades_detail.csv: one row per graded test cell (COURSE_SPEC.md), sorted
    by student and assignment; ``kept`` rows (from :func:`read_detail`) of
    submissions not graded in this run are written too. Every cell goes
    through :func:`csv_cell`."""
    # kept rows were written by csv_cell, which leaves its own output unchanged: compare in that form
    graded = {(csv_cell(o.submission.student), csv_cell(o.submission.assignment)) for o in outcomes}
    rows = [{k: r.get(k, "") for k in DETAIL_COLUMNS} for r in kept
            if (r["student_id"], r["assignment"]) not in graded]
    for outcome in outcomes:
        sub = outcome.submission
        for cell in outcome.cells:
            review = "; ".join(filter(None, [
                cell.automatic is not None and f"the instructor's score replaces the automatic {cell.automatic:g}",
                cell.review]))
            rows.append(dict(zip(DETAIL_COLUMNS, [sub.student, sub.assignment, sub.notebook, cell.grade_id,
                                                  f"{cell.score:g}", f"{cell.max_score:g}", cell.status, sandbox,
                                                  review, cell.verdict])))
        if outcome.late_seconds > 0:  # the notebook's rows then sum to nbgrader's score, as in grades.csv
            rows.append(dict(zip(DETAIL_COLUMNS, [sub.student, sub.assignment, sub.notebook, LATE,
                                                  f"{-outcome.penalty:g}", "0", LATE, sandbox,
                                                  late_note(outcome), ""])))
    rows = [{k: csv_cell(v) for k, v in r.items()} for r in rows]
    rows.sort(key=lambda r: (r["student_id"], r["assignment"]))  # stable: cells keep the notebook's order
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, DETAIL_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def read_detail(path: Path) -> list[dict]:
    """The rows of an earlier grades_detail.csv (none if it does not exist)."""
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def graded_pairs(rows: list[dict]) -> set[tuple[str, str]]:
    """(student, assignment) pairs that have a result: rows, none of them left
    without one by a failure of the grader itself."""
    failed = {(r["student_id"], r["assignment"]) for r in rows if r.get("review", "").startswith(GRADER_FAILED)}
    return {(r["student_id"], r["assignment"]) for r in rows} - failed


def export_grades(out: Path) -> None:
    """The whole gradebook: grades.csv through nbgrader's CSV export
    (:class:`SafeCsvExportPlugin`), and grades_wide.csv (:func:`export_wide`)."""
    with Gradebook(gradebook_url(out)) as gb:
        SafeCsvExportPlugin(to=str(out / "grades.csv")).export(gb)
        export_wide(gb, out / "grades_wide.csv")


def export_wide(gb: Gradebook, path: Path) -> None:
    """One row per student on the roster, one column per assignment, as an
    LMS imports grades: student_id, email, last_name, first_name, then each
    assignment's score after its late penalty (0 where nothing was submitted,
    as nbgrader's export counts it) and the total."""
    assignments = [a.name for a in gb.assignments]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student_id", "email", "last_name", "first_name", *assignments, "total"])
        for student in gb.students:
            scores = []
            for assignment in assignments:
                try:
                    submission = gb.find_submission(assignment, student.id)
                except MissingEntry:
                    scores.append(0.0)
                    continue
                scores.append(submission.score - (submission.late_submission_penalty or 0.0))
            writer.writerow([csv_cell(v or "") for v in (student.id, student.email, student.last_name,
                                                         student.first_name)]
                            + [f"{v:g}" for v in scores] + [f"{sum(scores):g}"])


class SafeCsvExportPlugin(CsvExportPlugin):
    """nbgrader 0.9.6's ``CsvExportPlugin`` (same columns, rows and values) with
    every cell through :func:`csv_cell` and quoted as CSV needs.

    nbgrader joins the raw values with commas: a name holding a comma shifts
    the columns, and one starting with ``=`` is a formula in a spreadsheet.
    ``to`` is the file written (default ``grades.csv``); ``student`` and
    ``assignment`` restrict the rows when not empty.
    """

    def export(self, gradebook: Gradebook) -> None:
        keys = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                "raw_score", "late_submission_penalty", "score", "max_score"]
        with open(self.to or "grades.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(keys)
            for assignment in gradebook.assignments:
                if self.assignment and assignment.name not in self.assignment:
                    continue
                for student in gradebook.students:
                    if self.student and student.id not in self.student:
                        continue
                    try:
                        sub = gradebook.find_submission(assignment.name, student.id)
                    except MissingEntry:  # nothing submitted: zero, as nbgrader's export
                        scores = ["", 0.0, 0.0, 0.0]
                    else:
                        penalty = sub.late_submission_penalty
                        scores = [sub.timestamp, sub.score, penalty, max(0.0, sub.score - penalty)]
                    row = [assignment.name, assignment.duedate, scores[0], student.id, student.last_name,
                           student.first_name, student.email, *scores[1:], assignment.max_score]
                    writer.writerow(["" if v is None else csv_cell(v) for v in row])


def annotate(notebook, cells) -> None:
    """Add the trusted verdict to each test cell's outputs, for the feedback page."""
    by_id = {c.grade_id: c for c in cells}
    for cell in notebook.cells:
        result = by_id.get(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id"))
        if result is not None and cell.cell_type == "code" and cell.metadata.nbgrader.get("grade"):
            text = f"Grader: {result.status}, {result.score:g} / {result.max_score:g}"
            text += f": {result.message}\n" if result.message else "\n"
            if result.automatic is not None:
                text += f"Your instructor set this cell's score (automatic: {result.automatic:g}).\n"
            if result.review:
                text += f"To be reviewed by your instructor: {result.review}\n"
            cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=text))
    for i, cell in reversed(list(enumerate(notebook.cells))):  # written answers have no outputs: a note after
        result = by_id.get(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id"))
        if result is not None and result.status == "manual":
            state = (f"your instructor scored it {result.score:g} / {result.max_score:g}"
                     if result.verdict == "instructor" else "not graded yet")
            notebook.cells.insert(i + 1, nbformat.v4.new_markdown_cell(f"**Grader:** {result.message} ({state})."))


def write_feedback(out: Path, outcome) -> None:
    """A feedback page listing each test's status, for a submission without an
    nbgrader feedback page (not run, crashed, timed out)."""
    sub = outcome.submission
    path = out / "feedback" / sub.student / sub.assignment / f"{sub.notebook}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(
        f"<tr><td>{html.escape(c.grade_id)}</td><td>{c.score:g} / {c.max_score:g}</td>"
        f"<td>{html.escape(c.status)}</td></tr>" for c in outcome.cells)
    problem = html.escape("; ".join(filter(None, [outcome.problem or "; ".join(sub.notes),
                                                  outcome.log and f"your instructor has nbgrader's log ({outcome.log})"])))
    path.write_text(f"""<!DOCTYPE html>
<html lang="en"><head>{CSP_META}<meta charset="utf-8">
<title>Feedback: {html.escape(sub.assignment)} / {html.escape(sub.notebook)}</title></head>
<body>
<h1>{html.escape(sub.assignment)}: {html.escape(sub.notebook)}.ipynb</h1>
<p>Student: {html.escape(sub.student)}. Score: {outcome.score:g} / {outcome.max_score:g}.</p>
<p>The notebook could not be graded normally: {problem}</p>
<table><thead><tr><th>test</th><th>score</th><th>status</th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
""", encoding="utf-8")
