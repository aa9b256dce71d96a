"""What a grading run writes: console lines, grades_detail.csv, grades.csv and
feedback pages for submissions nbgrader could not run."""
from __future__ import annotations

import csv
import html
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook
from nbgrader.plugins import CsvExportPlugin

from .course import gradebook_url

# COURSE_SPEC.md's columns, then how learner code was isolated ("bubblewrap" or "none").
DETAIL_COLUMNS = ["student_id", "assignment", "notebook", "grade_id", "score", "max_score", "status", "sandbox"]


def summary_line(outcome) -> str:
    """One console line per submission: score, status counts and problems."""
    sub = outcome.submission
    counts: dict[str, int] = {}
    for cell in outcome.cells:
        counts[cell.status] = counts.get(cell.status, 0) + 1
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    notes = "; ".join(filter(None, [outcome.problem, *sub.notes]))
    return (f"{sub.student:<16} {sub.assignment:<24} {outcome.score:g}/{outcome.max_score:g}"
            f"  [{statuses}]" + (f"  {notes}" if notes else ""))


def write_detail(path: Path, outcomes, sandbox: str) -> None:
    """grades_detail.csv: one row per graded test cell (COURSE_SPEC.md)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(DETAIL_COLUMNS)
        for outcome in outcomes:
            sub = outcome.submission
            for cell in outcome.cells:
                writer.writerow([sub.student, sub.assignment, sub.notebook, cell.grade_id,
                                 f"{cell.score:g}", f"{cell.max_score:g}", cell.status, sandbox])


def export_grades(out: Path, students: list[str], assignments: list[str]) -> None:
    """grades.csv through nbgrader's own CSV export, limited to this batch."""
    plugin = CsvExportPlugin(to=str(out / "grades.csv"), student=students, assignment=assignments)
    with Gradebook(gradebook_url(out)) as gb:
        plugin.export(gb)


def annotate(notebook, cells) -> None:
    """Add the trusted verdict to each test cell's outputs, for the feedback page."""
    by_id = {c.grade_id: c for c in cells}
    for cell in notebook.cells:
        result = by_id.get(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id"))
        if result is not None and cell.cell_type == "code" and cell.metadata.nbgrader.get("grade"):
            text = f"Grader: {result.status}, {result.score:g} / {result.max_score:g}"
            text += f": {result.message}\n" if result.message else "\n"
            cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=text))


def write_feedback(out: Path, outcome) -> None:
    """A feedback page listing each test's status, for a submission without an
    nbgrader feedback page (not run, crashed, timed out)."""
    sub = outcome.submission
    path = out / "feedback" / sub.student / sub.assignment / f"{sub.notebook}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(
        f"<tr><td>{html.escape(c.grade_id)}</td><td>{c.score:g} / {c.max_score:g}</td>"
        f"<td>{html.escape(c.status)}</td></tr>" for c in outcome.cells)
    problem = html.escape(outcome.problem or "; ".join(sub.notes) or "")
    path.write_text(f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
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
