"""Grade a class: intake, nbgrader autograde per submission, statuses, reports.

Each submission is autograded by its own ``nbgrader autograde --student`` run,
so a duplicate cell, a dead kernel or a timeout in one notebook cannot stop
the rest of the batch (plain nbgrader aborts it). Up to ``workers`` run at once.
"""
from __future__ import annotations

import os
import queue
import shutil
import subprocess
import tempfile
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
from . import sandbox
from .course import NOTEBOOKS, REPO, SOLUTIONS, available_assignments, gradebook_url, nbgrader, workspace_args
from .intake import Submission, collect, unpack
from .release import release
from .sandbox import Limits, Sandbox, write_kernelspec
from .verify import Verdict, hidden_checks, learner_cells, verify

DEMO = REPO / "autograder" / "demo"
# Unprivileged uids for sandboxes, one per worker slot, chosen per run so that
# two grading runs on one machine never share a process limit (RLIMIT_NPROC
# counts every process of a uid).
SANDBOX_UID = 200000 + (os.getpid() % 100000) * 16


@dataclass
class CellResult:
    grade_id: str
    score: float
    max_score: float
    status: str
    message: str = ""  # the trusted verdict's reason, when it failed


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
          workers: int = 1, limits: Limits = Limits(), sandboxed: bool = True, log=print) -> list[Outcome]:
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
    if sandboxed and not sandbox.available():
        raise UsageError("bubblewrap (bwrap) is not installed: install it (apt-get install bubblewrap) "
                         "or pass --unsandboxed to run learner code without isolation")
    if not sandboxed:
        log("WARNING: grading without a sandbox: learner code runs with this user's rights")
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    source = (source or DEMO).resolve()
    if source.is_dir() and out.is_relative_to(source):
        raise UsageError("--out must not be inside SUBMISSIONS (submitted files are never changed)")
    with tempfile.TemporaryDirectory(prefix="unzipped-", dir=out) as scratch:  # a .zip's files, read during grading
        root = source if source.is_dir() else unpack(source, Path(scratch))
        return _grade_class(root, out, assignments, workers, limits, sandboxed, log)


def _grade_class(root: Path, out: Path, assignments, workers: int, limits: Limits, sandboxed: bool, log):
    known = available_assignments()
    submissions, skipped = collect(root, assignments, out / "submitted")
    for line in skipped:
        log(f"skipped {line}")
    batch = sorted({s.assignment for s in submissions})
    missing = [a for a in batch if a not in known]
    for a in missing:
        log(f"skipped {a}: no solution notebook to grade it against")
    submissions = [s for s in submissions if s.assignment in known]
    graded = sorted(set(batch) & set(known))
    try:
        calls = {a: hidden_checks(SOLUTIONS / a / f"{NOTEBOOKS[a]}.ipynb") for a in graded}
    except ValueError as exc:
        raise UsageError(f"configuration: {exc}") from None
    release(graded, release_dir=out / "release", db_url=gradebook_url(out))
    grader = _Grader(out, limits, sandboxed, workers, calls)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(grader.grade_one, submissions))
    for assignment in graded:  # one nbgrader run for the whole class; no learner code runs here
        nbgrader("generate_feedback", assignment, "--force", *workspace_args(out))
    for outcome in outcomes:
        sub = outcome.submission
        if not (out / "feedback" / sub.student / sub.assignment / f"{sub.notebook}.html").exists():
            report.write_feedback(out, outcome)
        log(report.summary_line(outcome))
    report.write_detail(out / "grades_detail.csv", outcomes, "bubblewrap" if sandboxed else "none")
    report.export_grades(out, sorted({s.student for s in submissions}), batch)
    return outcomes


class _Grader:
    def __init__(self, out: Path, limits: Limits, sandboxed: bool, workers: int, calls: dict):
        self.out, self.limits, self.sandboxed, self.calls = out, limits, sandboxed, calls
        self.db_lock = threading.Lock()
        # One unprivileged user per concurrent submission, so that one
        # submission's process limit cannot starve another's.
        self.uids: queue.Queue[int] = queue.Queue()
        for i in range(workers):
            self.uids.put(SANDBOX_UID + i % 16)

    def grade_one(self, sub: Submission) -> Outcome:
        for step in ("autograded", "feedback"):
            shutil.rmtree(self.out / step / sub.student / sub.assignment, ignore_errors=True)
        if sub.status:
            return self._zero(sub, sub.status, sub.problem)
        uid = self.uids.get()
        try:
            (self.out / "work").mkdir(exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.out / "work") as scratch:
                return self._run(sub, Sandbox(self.limits, self.sandboxed, uid), Path(scratch))
        finally:
            self.uids.put(uid)

    def _run(self, sub: Submission, box: Sandbox, scratch: Path) -> Outcome:
        release_nb = self.out / "release" / sub.assignment / f"{sub.notebook}.ipynb"
        submitted = self.out / "submitted" / sub.student / sub.assignment / f"{sub.notebook}.ipynb"
        graded_dir = self.out / "autograded" / sub.student / sub.assignment
        with ThreadPoolExecutor(max_workers=1) as side:  # the trusted run overlaps nbgrader's
            trusted = side.submit(verify, self.calls[sub.assignment], learner_cells(submitted, release_nb), box,
                                  scratch / "verify")
            runtime = scratch / "runtime"
            runtime.mkdir()
            os.chown(runtime, box.uid, box.uid)
            write_kernelspec(scratch, box.with_paths(readonly=[graded_dir]), str(graded_dir), runtime)
            try:
                result = nbgrader("autograde", sub.assignment, f"--student={sub.student}", "--force",
                                  "--KernelManager.transport=ipc", f"--KernelManager.ip={runtime / 'kernel'}",
                                  *workspace_args(self.out), timeout=self.limits.wall_seconds,
                                  env={"JUPYTER_PATH": str(scratch), "JUPYTER_RUNTIME_DIR": str(runtime)})
            except subprocess.TimeoutExpired:
                return self._zero(sub, "timeout", f"no result within {self.limits.wall_seconds} s")
            verdicts = trusted.result()
        graded = graded_dir / f"{sub.notebook}.ipynb"
        if result.returncode != 0 or not graded.exists():
            dead = "Kernel died" in result.stdout or "DeadKernelError" in result.stdout
            return self._zero(sub, "crashed" if dead else "error",
                              "the kernel died" if dead else _last_error(result.stdout))
        notebook = nbformat.read(graded, as_version=4)
        outcome = Outcome(sub, self._cells(sub, notebook, verdicts))
        self._record(sub, outcome.cells)
        report.annotate(notebook, outcome.cells)
        nbformat.write(notebook, graded)
        return outcome

    def _record(self, sub: Submission, cells: list[CellResult]) -> None:
        """Write the trusted scores into nbgrader's gradebook, so that its
        export, feedback and formgrader agree with grades_detail.csv."""
        scores = {c.grade_id: c.score for c in cells}
        with self.db_lock, Gradebook(gradebook_url(self.out)) as gb:
            for grade in gb.find_submission_notebook(sub.notebook, sub.assignment, sub.student).grades:
                grade.auto_score, grade.manual_score = scores.get(grade.name, 0.0), None
                grade.needs_manual_grade = False
            gb.db.commit()

    def _master_cells(self, sub: Submission) -> list[tuple[str, float]]:
        with self.db_lock, Gradebook(gradebook_url(self.out)) as gb:
            nb = gb.find_notebook(sub.notebook, sub.assignment)
            return [(c.name, c.max_score) for c in nb.grade_cells]

    def _cells(self, sub: Submission, graded, verdicts: dict[str, Verdict]) -> list[CellResult]:
        """A cell scores its points only when nbgrader's run in the learner's
        kernel passed it and the trusted verdict passed it too."""
        tampered = _tampered_ids(sub.path, self.out / "release" / sub.assignment / f"{sub.notebook}.ipynb")
        if tampered:
            sub.notes.append(f"test cells changed, deleted or duplicated: {', '.join(sorted(tampered))}")
        by_id = {c.metadata.nbgrader["grade_id"]: c for c in graded.cells if utils.is_grade(c)}
        with self.db_lock, Gradebook(gradebook_url(self.out)) as gb:
            grades = {g.name: g.score
                      for g in gb.find_submission_notebook(sub.notebook, sub.assignment, sub.student).grades}
        results = []
        for grade_id, max_score in self._master_cells(sub):
            in_kernel = min(float(grades.get(grade_id) or 0.0), max_score)
            status = _status(by_id.get(grade_id), in_kernel, max_score)
            verdict = verdicts.get(grade_id, Verdict("missing", "no trusted check ran"))
            if status == "passed":  # otherwise keep the failure the learner's feedback shows first
                status = verdict.status
            score = max_score if status == "passed" else 0.0
            results.append(CellResult(grade_id, score, max_score, "tampered" if grade_id in tampered else status,
                                      verdict.message))
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
