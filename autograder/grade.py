"""Grade a class: intake, nbgrader autograde per submission, statuses, reports.

Each submission is autograded by its own ``nbgrader autograde --student`` run,
so a duplicate cell, a dead kernel or a timeout in one notebook cannot stop
the rest of the batch (plain nbgrader aborts it). Up to ``workers`` run at once.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader import utils
from nbgrader.api import Gradebook
from sqlalchemy.exc import SAWarning

from . import report
from .course import REPO, available_assignments, gradebook_url, nbgrader, workspace_args
from .intake import Submission, collect, scratch_dir, unpack
from .release import release

DEMO = REPO / "autograder" / "demo"
SUBMISSION_TIMEOUT = 900  # seconds of wall clock for one notebook, kernel start included


@dataclass
class CellResult:
    grade_id: str
    score: float
    max_score: float
    status: str


@dataclass
class Outcome:
    submission: Submission
    cells: list[CellResult] = field(default_factory=list)
    problem: str = ""

    @property
    def score(self) -> float:
        return sum(c.score for c in self.cells)

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.cells)


class UsageError(ValueError):
    """A bad command line or configuration (exit status 2)."""


def grade(source: Path | None, out: Path, assignments: list[str] | None = None,
          workers: int = 1, timeout: float = SUBMISSION_TIMEOUT, log=print) -> list[Outcome]:
    """Grade every submission under ``source`` (default: the demo class) into ``out``.

    Writes ``out/grades.csv``, ``out/grades_detail.csv`` and
    ``out/feedback/<student>/<assignment>/<notebook>.html``. Raises UsageError
    for an unknown assignment or an unusable ``source``; any problem with a
    single submission becomes a status instead.
    """
    known = available_assignments()
    unknown = [a for a in assignments or [] if a not in known]
    if unknown:
        raise UsageError(f"unknown assignment(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    source = (source or DEMO).resolve()
    if source.is_dir() and out.is_relative_to(source):
        raise UsageError("--out must not be inside SUBMISSIONS (submitted files are never changed)")
    root = unpack(source, scratch_dir(out)) if not source.is_dir() else source
    submissions, skipped = collect(root, assignments, out / "submitted")
    for line in skipped:
        log(f"skipped {line}")
    batch = sorted({s.assignment for s in submissions})
    missing = [a for a in batch if a not in known]
    for a in missing:
        log(f"skipped {a}: no solution notebook to grade it against")
    submissions = [s for s in submissions if s.assignment in known]
    release(sorted(set(batch) & set(known)), release_dir=out / "release", db_url=gradebook_url(out))
    grader = _Grader(out, timeout)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(grader.grade_one, submissions))
    for outcome in outcomes:
        log(report.summary_line(outcome))
    report.write_detail(out / "grades_detail.csv", outcomes)
    report.export_grades(out, sorted({s.student for s in submissions}), batch)
    return outcomes


class _Grader:
    def __init__(self, out: Path, timeout: float):
        self.out, self.timeout = out, timeout
        self.db_lock = threading.Lock()

    def grade_one(self, sub: Submission) -> Outcome:
        for step in ("autograded", "feedback"):
            shutil.rmtree(self.out / step / sub.student / sub.assignment, ignore_errors=True)
        if sub.status:
            return self._zero(sub, sub.status, sub.problem)
        try:
            result = nbgrader("autograde", sub.assignment, f"--student={sub.student}", "--force",
                              *workspace_args(self.out), timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return self._zero(sub, "timeout", f"no result within {self.timeout:.0f} s")
        graded = self.out / "autograded" / sub.student / sub.assignment / f"{sub.notebook}.ipynb"
        if result.returncode != 0 or not graded.exists():
            dead = "Kernel died" in result.stdout or "DeadKernelError" in result.stdout
            return self._zero(sub, "crashed" if dead else "error",
                              "the kernel died" if dead else _last_error(result.stdout))
        outcome = Outcome(sub, self._cells(sub, nbformat.read(graded, as_version=4)))
        feedback = nbgrader("generate_feedback", sub.assignment, f"--student={sub.student}", "--force",
                            *workspace_args(self.out), timeout=self.timeout)
        if feedback.returncode != 0:
            report.write_feedback(self.out, outcome)
        return outcome

    def _master_cells(self, sub: Submission) -> list[tuple[str, float]]:
        with self.db_lock, Gradebook(gradebook_url(self.out)) as gb:
            nb = gb.find_notebook(sub.notebook, sub.assignment)
            return [(c.name, c.max_score) for c in nb.grade_cells]

    def _cells(self, sub: Submission, graded) -> list[CellResult]:
        tampered = _tampered_ids(sub.path, self.out / "release" / sub.assignment / f"{sub.notebook}.ipynb")
        if tampered:
            sub.notes.append(f"test cells changed, deleted or duplicated: {', '.join(sorted(tampered))}")
        by_id = {c.metadata.nbgrader["grade_id"]: c for c in graded.cells if utils.is_grade(c)}
        with self.db_lock, Gradebook(gradebook_url(self.out)) as gb:
            grades = {g.name: (g.score, g.max_score)
                      for g in gb.find_submission_notebook(sub.notebook, sub.assignment, sub.student).grades}
        results = []
        for grade_id, max_score in self._master_cells(sub):
            score = min(float(grades.get(grade_id, (0.0,))[0] or 0.0), max_score)
            status = _status(by_id.get(grade_id), score, max_score)
            results.append(CellResult(grade_id, score, max_score, "tampered" if grade_id in tampered else status))
        return results

    def _zero(self, sub: Submission, status: str, problem: str) -> Outcome:
        """Record a score of 0 for every graded cell of a submission that could not run."""
        with self.db_lock, Gradebook(gradebook_url(self.out)) as gb, warnings.catch_warnings():
            # nbgrader's own update_or_create_submission trips SQLAlchemy's autoflush warning.
            warnings.simplefilter("ignore", SAWarning)
            gb.update_or_create_student(sub.student)
            submission = gb.update_or_create_submission(sub.assignment, sub.student)
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    grade.auto_score, grade.manual_score, grade.needs_manual_grade = 0.0, None, False
            gb.db.commit()
        cells = [CellResult(gid, 0.0, mx, status) for gid, mx in self._master_cells(sub)]
        outcome = Outcome(sub, cells, problem)
        report.write_feedback(self.out, outcome)
        return outcome


def _status(cell, score: float, max_score: float) -> str:
    if cell is None:
        return "missing"
    errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
    if errors:
        ename = errors[-1].ename
        return "timeout" if ename == "CellTimeoutError" else "failed" if ename == "AssertionError" else "error"
    return "passed" if score >= max_score else "failed"


def _tampered_ids(submitted: Path, released: Path) -> set[str]:
    """Test cells whose source was edited, or that were deleted or duplicated."""
    release_cells = {c.metadata.nbgrader["grade_id"]: c.source
                     for c in nbformat.read(released, as_version=4).cells if utils.is_grade(c)}
    seen: dict[str, list[str]] = {}
    for cell in nbformat.read(submitted, as_version=4).cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in release_cells:
            seen.setdefault(grade_id, []).append(cell.source)
    return {gid for gid, src in release_cells.items()
            if len(seen.get(gid, [])) != 1 or seen[gid][0] != src}


def _last_error(log: str) -> str:
    lines = [line for line in log.splitlines() if "Error" in line or "error" in line]
    return (lines[-1] if lines else "nbgrader autograde failed").strip()[:300]
