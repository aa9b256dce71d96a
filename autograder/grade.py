"""Grade a class: intake, nbgrader autograde per submission, statuses, reports.

Each submission is autograded on its own (nbgrader's autograde for one
student, in a long-lived nbgrader process per worker slot that is restarted
after a timeout), so a duplicate cell, a dead kernel or a timeout in one
notebook cannot stop the rest of the batch (plain nbgrader aborts it). Up to
``workers`` submissions are graded at once.
"""
from __future__ import annotations

import functools
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader import utils
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import LateSubmissionPlugin
from sqlalchemy.exc import SAWarning

from . import cgroups, releases, report
from . import sandbox
from .course import INTAKE, NOTEBOOKS, REPO, SOLUTIONS, available_assignments, gradebook_url, nbgrader, workspace_args
from .intake import Submission, collect, unpack
from .nbgrader_server import NbgraderServer
from .release import release
from .sandbox import Limits, Sandbox, write_kernelspec
from .term import TERM_FILE, TermError, apply_due_dates
from .term import load as load_term
from .verify import Verdict, hidden_checks, learner_cells, verify

DEMO = REPO / "autograder" / "demo"
# Unprivileged uids for sandboxes, one per worker slot, chosen per run so that
# two grading runs on one machine never share a process limit (RLIMIT_NPROC
# counts every process of a uid).
SANDBOX_UID = 200000 + (os.getpid() % 100000) * 16
# Statuses whose nbgrader log is kept for the instructor.
KEPT_LOG_STATUSES = ("error", "crashed", "timeout")
# The feedback of a written answer (a "manually graded answer" cell).
ANSWER_MESSAGE = "this answer is graded by your instructor"
# What a learner reads when the grader itself failed on their notebook.
GRADER_FAILED_FOR_LEARNER = ("your notebook could not be graded because the grader failed, not because of your "
                             "code; your instructor has been told and will grade it again")


@dataclass
class CellResult:
    grade_id: str
    score: float
    max_score: float
    status: str
    message: str = ""  # the trusted verdict's reason, when it failed
    review: str = ""   # why a person should look at this cell (empty: no need)
    verdict: str = ""  # who decided the score: trusted (check), kernel (plain nbgrader test), instructor
    automatic: float | None = None  # the automatic score an instructor's score replaced


@dataclass
class Outcome:
    submission: Submission
    cells: list[CellResult] = field(default_factory=list)
    problem: str = ""
    log: str = ""               # nbgrader's log kept for this submission, relative to the output folder
    grader_failed: bool = False  # the grader itself failed (after a retry); a rerun with --resume grades it
    grader_error: str = ""       # what failed in the grader (for the instructor, not the learner's feedback)
    late_seconds: float = 0.0    # after the due date (nbgrader's timestamp against the gradebook's due date)
    penalty: float = 0.0         # nbgrader's late penalty, taken off ``score``

    @property
    def score(self) -> float:
        return sum(c.score for c in self.cells)

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.cells)


class UsageError(ValueError):
    """A bad command line or configuration (exit status 2)."""


def grade(source: Path | None, out: Path, assignments: list[str] | None = None,
          workers: int = 1, limits: Limits = Limits(), sandboxed: bool = True, log=print,
          resume: bool = False, students: list[str] | None = None) -> list[Outcome]:
    """Grade every submission under ``source`` (default: the demo class) into ``out``.

    Writes ``out/grades.csv``, ``out/grades_detail.csv`` and
    ``out/feedback/<student>/<assignment>/<notebook>.html``, and keeps
    nbgrader's log of each submission that ended in error, crashed or timeout
    in ``out/logs/<student>/<assignment>.log``. ``assignments`` and
    ``students`` restrict the batch; the CSV files always cover the whole
    gradebook (rows of submissions not graded in this run are kept, and every
    student on the roster without a submission gets ``missing`` rows). With
    ``resume``, only the submissions without a result in
    ``out/grades_detail.csv`` (or whose grading failed for the grader's own
    fault) are graded. Raises UsageError for an unknown assignment or an unusable
    ``source``; any problem with a single submission becomes a status instead.
    Every line logged has its control characters escaped (names and messages
    come from submissions).
    """
    log = report.escaping(log)
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
        outcomes = _grade_class(root, out, assignments, workers, limits, sandboxed, log, resume, students)
    failed = [o for o in outcomes if o.grader_failed]
    if failed:
        names = "; ".join(f"{o.submission.student}/{o.submission.assignment}: {o.grader_error}" for o in failed)
        log(f"{len(failed)} submission(s) could not be graded because the grader failed, not the learner's code "
            f"({names}; nbgrader's logs are in {out / 'logs'}); rerun: python -m autograder grade {source} "
            f"--out {out} --resume")
    return outcomes


def _grade_class(root: Path, out: Path, assignments, workers: int, limits: Limits, sandboxed: bool, log,
                 resume: bool, students: list[str] | None):
    known = available_assignments()
    submissions, skipped = collect(root, assignments, out / INTAKE)
    for line in skipped:
        log(f"skipped {line}")
    if students is not None:
        for student in sorted(set(students) - {s.student for s in submissions}):
            log(f"skipped {student}: no submission folder under {root}")
        submissions = [s for s in submissions if s.student in students]
    if not submissions:
        raise UsageError(f"nothing to grade in {root}: expected <student_id>/<assignment_id>/<notebook>.ipynb"
                         + (f" (skipped: {'; '.join(skipped)})" if skipped else ""))
    kept = report.read_detail(out / "grades_detail.csv")
    done = report.graded_pairs(kept) if resume else set()
    if done:
        log(f"resuming: {sum((s.student, s.assignment) in done for s in submissions)} submission(s) "
            f"already have a result in {out / 'grades_detail.csv'}")
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
    try:
        term = load_term(TERM_FILE, known)
    except TermError as exc:
        raise UsageError(f"configuration: {exc}") from None
    release(graded, release_dir=out / "release", db_url=gradebook_url(out))
    apply_due_dates(term, gradebook_url(out), graded)
    _add_students(out, sorted({s.student for s in submissions}))
    todo = [s for s in submissions if (s.student, s.assignment) not in done]
    (out / "work").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out / "work") as work, ThreadPoolExecutor(max_workers=workers) as pool:
        grader = _Grader(out, limits, sandboxed, workers, calls, Path(work), log)
        try:
            outcomes = list(pool.map(grader.grade_one, todo))
        finally:
            grader.close()
    _late_penalties(out, outcomes, LateSubmissionPlugin(penalty_method=term.penalty_method))
    for assignment in graded:  # one nbgrader run for the whole class; no learner code runs here
        nbgrader("generate_feedback", assignment, "--force", *workspace_args(out))
    for outcome in outcomes:
        sub = outcome.submission
        if not (out / "feedback" / sub.student / sub.assignment / f"{sub.notebook}.html").exists():
            report.write_feedback(out, outcome)
        log(report.summary_line(outcome))
    for line in report.class_summary(outcomes):
        log(line)
    sandbox_name = "bubblewrap" if sandboxed else "none"
    pairs = {(r["student_id"], r["assignment"]) for r in kept} | {(o.submission.student, o.submission.assignment)
                                                                   for o in outcomes}
    report.write_detail(out / "grades_detail.csv", outcomes, sandbox_name, kept + _roster_rows(out, pairs, sandbox_name))
    check_gradebook(out)
    report.export_grades(out)  # the whole gradebook, as `nbgrader export` writes it
    return outcomes


def _late_penalties(out: Path, outcomes: list[Outcome], plugin: LateSubmissionPlugin) -> None:
    """nbgrader's late penalty of each graded notebook, from the final scores
    (nbgrader's own AssignLatePenalties saw only its run in the kernel), into
    the gradebook and the outcome."""
    with Gradebook(gradebook_url(out)) as gb:
        for outcome in outcomes:
            sub = outcome.submission
            try:
                notebook = gb.find_submission_notebook(sub.notebook, sub.assignment, sub.student)
            except MissingEntry:
                continue
            outcome.late_seconds = notebook.assignment.total_seconds_late
            if outcome.late_seconds > 0:
                outcome.penalty = plugin.late_submission_penalty(sub.student, outcome.score, outcome.late_seconds) or 0.0
            notebook.late_submission_penalty = outcome.penalty if outcome.late_seconds > 0 else None
        gb.db.commit()


def _roster_rows(out: Path, pairs: set[tuple[str, str]], sandbox: str) -> list[dict]:
    """``missing`` rows (score 0) for every student on the gradebook's roster
    and every assignment in it without a row yet: nothing submitted, as
    ``nbgrader export`` reports them."""
    rows = []
    with Gradebook(gradebook_url(out)) as gb:
        roster = sorted(s.id for s in gb.students)
        for assignment in gb.assignments:
            cells = [(nb.name, c.name, c.max_score) for nb in assignment.notebooks for c in nb.grade_cells]
            rows += [{"student_id": student, "assignment": assignment.name, "notebook": notebook,
                      "grade_id": grade_id, "score": "0", "max_score": f"{max_score:g}", "status": "missing",
                      "sandbox": sandbox, "review": ""}
                     for student in roster if (student, assignment.name) not in pairs
                     for notebook, grade_id, max_score in cells]
    return rows


class GradebookMismatch(RuntimeError):
    """The gradebook's scores are not those of grades_detail.csv (grades.csv is not written)."""


def check_gradebook(out: Path) -> None:
    """Check that every row of ``out/grades_detail.csv`` has its score in the
    gradebook, before nbgrader's export reads it.

    Only our trusted scores may reach grades.csv: something else writing the
    gradebook (an nbgrader run under another spelling of a student id, a
    hand edit) would make the export disagree with grades_detail.csv. Raises
    GradebookMismatch naming each differing cell.
    """
    wrong = []
    with Gradebook(gradebook_url(out)) as gb:
        for row in report.read_detail(out / "grades_detail.csv"):
            where = f"{row['student_id']!r}/{row['assignment']}/{row['grade_id']}"
            if row["status"] == report.LATE:
                try:
                    penalty = gb.find_submission_notebook(row["notebook"], row["assignment"],
                                                          row["student_id"]).late_submission_penalty or 0.0
                except MissingEntry:
                    penalty = None
                if penalty is None or -penalty != float(row["score"]):
                    wrong.append(f"{where}: late penalty {penalty} in the gradebook, {row['score']} in "
                                 f"grades_detail.csv")
                continue
            try:
                score = gb.find_grade(row["grade_id"], row["notebook"], row["assignment"], row["student_id"]).score
            except MissingEntry:
                if row["status"] == "missing" and float(row["score"]) == 0:
                    continue  # nothing submitted: nbgrader has no submission either, and exports 0
                wrong.append(f"{where}: not in the gradebook")
                continue
            if score != float(row["score"]):
                wrong.append(f"{where}: {score:g} in the gradebook, {row['score']} in grades_detail.csv")
    if wrong:
        (out / "grades.csv").unlink(missing_ok=True)
        raise GradebookMismatch(f"the gradebook {out / 'gradebook.db'} disagrees with grades_detail.csv, so "
                                f"grades.csv was not written: {'; '.join(wrong[:20])}"
                                + (f" (and {len(wrong) - 20} more)" if len(wrong) > 20 else ""))


def _add_students(out: Path, students: list[str]) -> None:
    """Create every student in the gradebook before any nbgrader process runs.

    nbgrader's autograde creates a student it meets for the first time with a
    find-then-insert (``Gradebook.update_or_create_student``); two of them
    grading one new student's notebooks at once both insert, and one fails
    (``UNIQUE constraint failed: student.id``): the notebook scored ``error``
    for the grader's own fault.
    """
    with Gradebook(gradebook_url(out)) as gb:
        for student in students:
            gb.update_or_create_student(student)


@dataclass
class _Slot:
    """One worker slot: an unprivileged user of its own (so that one
    submission's process limit cannot starve another's), a cgroup that holds
    every process of the submission it grades, a sandboxed kernelspec and an
    nbgrader process, reused by the submissions it grades."""

    box: Sandbox
    runtime: Path  # the kernel's connection file and sockets
    server: NbgraderServer
    cgroup: cgroups.Cgroup | None  # None where cgroups are unusable: per-process limits only
    tmpfs: bool  # the runtime folder is a size-limited tmpfs, not a folder on the grader's disk

    def fresh_runtime(self) -> None:
        """An empty runtime folder owned by the sandbox's user: nothing a
        previous submission's kernel left there reaches the next one."""
        if self.tmpfs:
            sandbox.unmount(self.runtime)
            if problem := sandbox.mount_tmpfs(self.runtime, sandbox.RUNTIME_MB, self.box.uid):
                raise OSError(f"cannot mount a tmpfs on {self.runtime}: {problem}")
            return
        shutil.rmtree(self.runtime, ignore_errors=True)
        self.runtime.mkdir()
        os.chown(self.runtime, self.box.uid, self.box.uid)

    def fresh_cgroup(self) -> None:
        """Kill whatever the previous submission left in the slot's cgroup and
        make it anew, with the limits of one submission."""
        if self.cgroup:
            limits = self.box.limits
            self.cgroup.reset(limits.memory_mb, limits.processes, limits.cpus)

    def closing_steps(self) -> list:
        """What ends the slot, each step to be tried even if another failed: stop
        the nbgrader process, kill and remove the cgroup, unmount the runtime folder."""
        return ([self.server.close] + ([self.cgroup.remove] if self.cgroup else [])
                + ([functools.partial(sandbox.unmount, self.runtime)] if self.tmpfs else []))


class _Grader:
    def __init__(self, out: Path, limits: Limits, sandboxed: bool, workers: int, calls: dict, work: Path,
                 log=print):
        """Worker slots for ``workers`` submissions at once. Where this machine
        offers no usable cgroup (or cannot mount a tmpfs), says once through
        ``log`` that limits hold per process only (or that runtime folders lie
        on the grader's disk). Call :meth:`close` at the end, also after an exception."""
        self.out, self.limits, self.calls, self.work, self.log = out, limits, calls, work, log
        self.db_lock = threading.Lock()
        self.slots: queue.Queue[_Slot] = queue.Queue()
        self.every_slot: list[_Slot] = []  # close() reaches those a grading thread still holds
        self.cgroup = None
        try:
            self.cgroup = cgroups.create_run(f"autograder-{os.getpid()}-{work.name}")
        except cgroups.Unavailable as exc:
            log(f"WARNING: limits hold per process, not per submission: no usable cgroup ({exc})")
        mounting = True
        try:
            for i in range(workers):
                cgroup = self.cgroup.child(f"slot{i}") if self.cgroup else None
                box = Sandbox(limits, sandboxed, SANDBOX_UID + i % 16, cgroup_procs=cgroup.procs if cgroup else ())
                folder = work / f"slot{i}"
                runtime = folder / "runtime"
                runtime.mkdir(parents=True)
                write_kernelspec(folder, box, out / "autograded", runtime)
                # The connection file too (jupyter_client's default is a mkstemp in the grader's TMPDIR).
                options = ["--force", "--KernelManager.transport=ipc", f"--KernelManager.ip={runtime / 'kernel'}",
                           f"--KernelManager.connection_file={runtime / 'kernel.json'}"]
                server = NbgraderServer(options + workspace_args(out),
                                        {"JUPYTER_PATH": str(folder), "JUPYTER_RUNTIME_DIR": str(runtime)},
                                        folder / "nbgrader.log", limits.memory_mb)
                slot = _Slot(box, runtime, server, cgroup, tmpfs=False)
                self.every_slot.append(slot)
                self.slots.put(slot)
                if mounting and (problem := sandbox.mount_tmpfs(runtime, sandbox.RUNTIME_MB, box.uid)):
                    mounting = False
                    log(f"WARNING: the kernels' runtime folders lie on the grader's disk with no size limit: "
                        f"cannot mount a tmpfs ({problem})")
                slot.tmpfs = mounting
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop every slot's processes, remove the cgroups, unmount the runtime
        folders; a step that fails is reported through ``log`` and the others still run."""
        steps = [step for slot in self.every_slot for step in slot.closing_steps()]
        steps += [self.cgroup.remove] if self.cgroup else []
        for step in steps:
            try:
                step()
            except Exception as exc:  # what is left behind must not cost the batch its results
                self.log(f"WARNING: cleaning up after grading failed: {type(exc).__name__}: {exc}")

    def grade_one(self, sub: Submission) -> Outcome:
        for step in ("autograded", "feedback"):
            shutil.rmtree(self.out / step / sub.student / sub.assignment, ignore_errors=True)
        if sub.status:
            return self._zero(sub, sub.status, sub.problem)
        slot = self.slots.get()
        try:
            with tempfile.TemporaryDirectory(dir=self.work) as scratch:
                return self._run(sub, slot, Path(scratch))
        except Exception as exc:  # a bug of ours must cost this submission its result, not the batch
            return self._grader_failed(sub, f"{type(exc).__name__}: {exc}", [traceback.format_exc()])
        finally:
            self.slots.put(slot)

    def _run(self, sub: Submission, slot: _Slot, scratch: Path) -> Outcome:
        release_nb = self.out / "release" / sub.assignment / f"{sub.notebook}.ipynb"
        submitted = self.out / INTAKE / sub.student / sub.assignment / f"{sub.notebook}.ipynb"
        graded = self.out / "autograded" / sub.student / sub.assignment / f"{sub.notebook}.ipynb"
        logs = []
        slot.fresh_cgroup()  # before this submission's processes start (kernel and worker join it)
        with ThreadPoolExecutor(max_workers=1) as side:  # the trusted run overlaps nbgrader's
            trusted = side.submit(verify, self.calls[sub.assignment], learner_cells(submitted, release_nb), slot.box,
                                  scratch / "verify")
            for attempt in (1, 2):
                slot.fresh_runtime()
                try:
                    success, log, died = slot.server.autograde(sub.assignment, sub.student, self.limits.wall_seconds,
                                                               sorted(self.calls[sub.assignment]))
                except subprocess.TimeoutExpired as exc:
                    return self._zero(sub, "timeout", f"no result within {self.limits.wall_seconds} s",
                                      logs + [exc.output or ""])
                logs.append(log)
                fault = None if success and graded.exists() else _learner_fault(log, died)
                if fault != "grader":
                    break
                # The grader's own failure: once more on a fresh nbgrader process.
                logs.append(f"\n--- attempt {attempt} failed in the grader; retrying on a fresh nbgrader process ---\n")
                slot.server.close()
            verdicts = trusted.result()
        if fault == "grader":
            return self._grader_failed(sub, _last_error(log), logs)
        if fault:
            return self._zero(sub, "crashed", fault, logs)
        notebook = nbformat.read(graded, as_version=4)
        outcome = Outcome(sub, self._cells(sub, notebook, verdicts))
        if any(c.status in KEPT_LOG_STATUSES for c in outcome.cells):
            self._keep_log(outcome, logs)
        self._record(sub, outcome.cells)
        report.annotate(notebook, outcome.cells)
        nbformat.write(notebook, graded)
        return outcome

    def _grader_failed(self, sub: Submission, reason: str, logs: list[str]) -> Outcome:
        """A submission left without a result by the grader's own failure (a rerun with --resume grades it).
        The learner's feedback says only that; ``reason`` is the instructor's (console, review, log)."""
        outcome = self._zero(sub, "error", GRADER_FAILED_FOR_LEARNER, logs)
        outcome.grader_failed, outcome.grader_error = True, reason
        for cell in outcome.cells:
            cell.review = f"{report.GRADER_FAILED} (not the learner's code): rerun with --resume; {cell.review}"
        return outcome

    def _keep_log(self, outcome: Outcome, logs: list[str]) -> None:
        """Keep nbgrader's log in ``logs/<student>/<assignment>.log`` and point to it
        from the cells that did not run normally."""
        sub = outcome.submission
        path = self.out / "logs" / sub.student / f"{sub.assignment}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(logs), encoding="utf-8")
        outcome.log = str(path.relative_to(self.out))
        for cell in outcome.cells:
            if cell.status in KEPT_LOG_STATUSES:
                cell.review = "; ".join(filter(None, [cell.review, f"nbgrader's log: {outcome.log}"]))

    def _record(self, sub: Submission, cells: list[CellResult]) -> None:
        """Write the automatic scores into nbgrader's gradebook, so that its
        export, feedback and formgrader agree with grades_detail.csv.

        The gradebook is the record, as with stock nbgrader: a score the
        instructor set in the formgrader (``manual_score``) survives, and
        replaces the automatic one in ``cells`` too. A written answer, or a
        cell a person should review, is flagged ``needs_manual_grade`` until
        the instructor has scored it.
        """
        by_id = {c.grade_id: c for c in cells}
        with self.db_lock, Gradebook(gradebook_url(self.out)) as gb:
            for grade in gb.find_submission_notebook(sub.notebook, sub.assignment, sub.student).grades:
                cell = by_id.get(grade.name)
                if cell is None:
                    continue
                grade.auto_score = None if cell.status == "manual" else cell.score
                grade.needs_manual_grade = grade.manual_score is None and (cell.status == "manual" or bool(cell.review))
                if grade.manual_score is not None:
                    if cell.status != "manual":
                        cell.automatic = cell.score
                    cell.verdict, cell.score = "instructor", min(grade.manual_score, cell.max_score)
            gb.db.commit()

    def _master_cells(self, sub: Submission) -> list[tuple[str, float, bool]]:
        """(grade_id, points, graded by a person) of each graded cell of the release."""
        with self.db_lock, Gradebook(gradebook_url(self.out)) as gb:
            nb = gb.find_notebook(sub.notebook, sub.assignment)
            answers = {c.name for c in nb.solution_cells}  # "manually graded answer" cells
            return [(c.name, c.max_score, c.name in answers) for c in nb.grade_cells]

    def _cells(self, sub: Submission, graded, verdicts: dict[str, Verdict]) -> list[CellResult]:
        """A test cell with a trusted check scores its points only when
        nbgrader's run in the learner's kernel passed it and the trusted verdict
        passed it too; a plain nbgrader test cell scores what nbgrader gave it
        (partial credit included); a written answer awaits the instructor."""
        copy = self.out / INTAKE / sub.student / sub.assignment / f"{sub.notebook}.ipynb"  # intake's, not a link
        cells = _against_releases(sub, copy, self.out / "release" / sub.assignment / f"{sub.notebook}.ipynb")
        if cells.tampered:
            sub.notes.append(f"test cells changed, deleted or duplicated: {', '.join(sorted(cells.tampered))}")
        if cells.new:
            sub.notes.append(f"made against an earlier release, without: {', '.join(sorted(cells.new))}")
        by_id = {c.metadata.nbgrader["grade_id"]: c for c in graded.cells if utils.is_grade(c)}
        with self.db_lock, Gradebook(gradebook_url(self.out)) as gb:
            grades = {g.name: g.auto_score
                      for g in gb.find_submission_notebook(sub.notebook, sub.assignment, sub.student).grades}
        results = []
        for grade_id, max_score, answer in self._master_cells(sub):
            if answer:
                results.append(CellResult(grade_id, 0.0, max_score, "manual", ANSWER_MESSAGE))
                continue
            in_kernel = min(float(grades.get(grade_id) or 0.0), max_score)
            status = _status(by_id.get(grade_id), in_kernel, max_score)
            verdict = verdicts.get(grade_id)
            if verdict is None:  # a plain nbgrader test: its verdict was reached in the learner's kernel
                score, review = (in_kernel if status in ("passed", "failed") else 0.0), ""
            else:
                kernel_passed = status == "passed"
                if kernel_passed:  # otherwise keep the failure the learner's feedback shows first
                    status = verdict.status
                score = max_score if status == "passed" else max_score * verdict.fraction if kernel_passed else 0.0
                review = verdict.review
            if grade_id in cells.new:
                status, score, review = "missing", 0.0, "not in the release this notebook was made from"
            elif grade_id in cells.tampered:
                status = "tampered"
            elif grade_id in cells.earlier:
                review = "; ".join(filter(None, [
                    "the notebook holds this test as an earlier release had it (changed since): "
                    "graded with the current test", review]))
            message = verdict.message if verdict and verdict.message else _kernel_reason(by_id.get(grade_id), status)
            results.append(CellResult(grade_id, score, max_score, status, message, review,
                                      "trusted" if verdict else "kernel"))
        return results

    def _zero(self, sub: Submission, status: str, problem: str, logs: list[str] | None = None) -> Outcome:
        """Record a score of 0 for every graded cell of a submission that could
        not run; ``logs`` (nbgrader's, when it ran) are kept."""
        with self.db_lock, Gradebook(gradebook_url(self.out)) as gb, warnings.catch_warnings():
            # nbgrader's own update_or_create_submission trips SQLAlchemy's autoflush warning.
            warnings.simplefilter("ignore", SAWarning)
            gb.update_or_create_student(sub.student)
            gb.update_or_create_submission(sub.assignment, sub.student)
        # What nbgrader wrote before it was stopped is no result (and holds what its first pass put back).
        shutil.rmtree(self.out / "autograded" / sub.student / sub.assignment, ignore_errors=True)
        cells = [CellResult(gid, 0.0, mx, status) for gid, mx, _ in self._master_cells(sub)]
        self._record(sub, cells)
        outcome = Outcome(sub, cells, problem)
        if logs is not None:
            self._keep_log(outcome, logs)
        report.write_feedback(self.out, outcome)
        return outcome


def _kernel_reason(cell, status: str) -> str:
    """Why a cell did not pass in the learner's kernel, when no trusted verdict
    says: the error its visible tests raised, as the learner's notebook shows it."""
    if cell is None or status in ("passed", "missing"):
        return ""
    errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
    if not errors:
        return "the cell's tests did not all pass in your notebook"
    first = f"{errors[-1].ename}: {errors[-1].evalue}".splitlines()[0]
    return f"in your notebook, {first[:300]}"


def _status(cell, score: float, max_score: float) -> str:
    if cell is None:
        return "missing"
    errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
    if errors:
        ename = errors[-1].ename
        return "timeout" if ename == "CellTimeoutError" else "failed" if ename == "AssertionError" else "error"
    return "passed" if score >= max_score else "failed"


@dataclass
class _ReleaseMatch:
    tampered: set[str]  # test cells edited, deleted or duplicated
    earlier: set[str]   # test cells as an earlier release had them (the instructor changed them since)
    new: set[str]       # graded cells added after the release the notebook was made from


def _against_releases(sub: Submission, copy: Path, released: Path) -> _ReleaseMatch:
    """Compare a submission's test cells (their sources as submitted,
    duplicates included: ``sub.sources``; the order of its graded cells from
    intake's ``copy``) with every release of its assignment
    (:mod:`autograder.releases`, and ``released``, the current one).

    A test cell counts as untouched when its source is that of any release. A
    cell the notebook lacks is ``new`` when the notebook's graded cells are
    exactly those of an earlier release that did not have it; otherwise it
    was deleted.
    """
    current = releases.fingerprint(nbformat.read(released, as_version=4))
    history = releases.versions(sub.assignment) + [current]
    notebook = nbformat.read(copy, as_version=4)
    ids = [c.metadata.nbgrader["grade_id"] for c in notebook.cells if utils.is_grade(c) or utils.is_solution(c)]
    seen = {grade_id: [releases.digest(source) for source in sources] for grade_id, sources in sub.sources.items()}
    made_from = next((v for v in reversed(history) if v["cells"] == ids), None)
    match = _ReleaseMatch(set(), set(), set())
    for grade_id, digest in current["tests"].items():
        copies = seen.get(grade_id, [])
        if not copies and made_from is not None and grade_id not in made_from["cells"]:
            match.new.add(grade_id)
        elif len(copies) != 1 or not any(v["tests"].get(grade_id) == copies[0] for v in history):
            match.tampered.add(grade_id)
        elif copies[0] != digest:
            match.earlier.add(grade_id)
    return match


def _learner_fault(log: str, died: bool) -> str:
    """Why nbgrader's run failed: the learner's fault (a message), or "grader".

    A kernel that died, or an nbgrader process that ran out of memory holding
    the kernel's output, is the learner's code; anything else (an exception in
    nbgrader, its process killed from outside) is the grader's own failure.
    """
    if "Kernel died" in log or "DeadKernelError" in log:
        return "the kernel died"
    if died and "MemoryError" in log:
        return "nbgrader ran out of memory holding the notebook's output"
    return "grader"


def _last_error(log: str) -> str:
    lines = [line for line in log.splitlines() if "Error" in line or "error" in line]
    return (lines[-1] if lines else "nbgrader autograde failed").strip()[:300]
