"""Read a folder (or .zip) of submissions and copy them into nbgrader's layout.

The submitted files are only read: everything nbgrader touches is a copy under
``<out>/submitted``. Problems that keep a notebook from being graded (missing,
misnamed, not valid JSON) become statuses, never exceptions.
"""
from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .course import NOTEBOOKS

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
MAX_UNZIPPED_BYTES = 512 * 2**20


@dataclass
class Submission:
    """One student's work on one assignment.

    ``status`` is None when the notebook was copied for grading; otherwise it
    is the status of every graded cell ("missing" or "error") and ``problem``
    says why.
    """

    student: str
    assignment: str
    path: Path | None = None  # the submitted notebook (read, never written)
    status: str | None = None
    problem: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def notebook(self) -> str:
        return NOTEBOOKS[self.assignment]


class IntakeError(ValueError):
    """The submissions path itself is unusable (a usage error)."""


def unpack(source: Path, scratch: Path) -> Path:
    """The folder to read: ``source`` itself, or a .zip extracted into ``scratch``.

    Raises IntakeError for a path that does not exist, a bad zip, an entry
    that would land outside ``scratch``, or more than 512 MiB unpacked.
    """
    if source.is_dir():
        return source
    if not source.is_file():
        raise IntakeError(f"SUBMISSIONS {source} does not exist")
    if not zipfile.is_zipfile(source):
        raise IntakeError(f"SUBMISSIONS {source} is neither a folder nor a .zip file")
    scratch.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(source) as archive:
        infos = archive.infolist()
        if sum(i.file_size for i in infos) > MAX_UNZIPPED_BYTES:
            raise IntakeError(f"{source} unpacks to more than {MAX_UNZIPPED_BYTES} bytes")
        for info in infos:
            target = (scratch / info.filename).resolve()
            if not target.is_relative_to(scratch.resolve()):
                raise IntakeError(f"{source} has an entry outside its folder: {info.filename}")
        archive.extractall(scratch)
    root = scratch
    # A zip of the `submitted/` folder itself: descend into its single folder.
    while True:
        children = [p for p in root.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        if len(children) == 1 and children[0].is_dir() and not _looks_like_student(children[0]):
            root = children[0]
        else:
            return root


def _looks_like_student(path: Path) -> bool:
    return any(p.name in NOTEBOOKS for p in path.iterdir() if p.is_dir())


def collect(root: Path, assignments: list[str] | None, submitted: Path) -> tuple[list[Submission], list[str]]:
    """Find every student's submissions under ``root`` and copy them to ``submitted``.

    ``assignments`` restricts the batch; when None, the batch is every known
    assignment that anyone submitted. Every student gets one Submission per
    assignment of the batch (``missing`` where nothing usable was handed in).
    Returns the submissions and lines describing what was skipped.
    """
    skipped: list[str] = []
    students = []
    for path in sorted(root.iterdir()):
        if path.name.startswith("."):
            continue
        if not path.is_dir():
            skipped.append(f"{path.name}: not a student folder (expected <student_id>/<assignment_id>/)")
        elif not STUDENT_ID.match(path.name):
            skipped.append(f"{path.name}: not a usable student id (letters, digits, _ . @ -)")
        else:
            students.append(path)
    found = {p.name for s in students for p in s.iterdir() if p.is_dir()}
    for name in sorted(found - set(NOTEBOOKS)):
        skipped.append(f"{name}: not an assignment of this course")
    batch = assignments or [a for a in NOTEBOOKS if a in found]
    submissions = []
    for student in students:
        for assignment in batch:
            submissions.append(_take(student / assignment, student.name, assignment, submitted))
    return submissions, skipped


def _take(folder: Path, student: str, assignment: str, submitted: Path) -> Submission:
    sub = Submission(student, assignment)
    dest = submitted / student / assignment
    shutil.rmtree(dest, ignore_errors=True)
    expected = folder / f"{sub.notebook}.ipynb"
    if not folder.is_dir():
        sub.status, sub.problem = "missing", "no submission"
        return sub
    others = sorted(p.name for p in folder.iterdir() if p.name not in (expected.name, "timestamp.txt"))
    if not expected.is_file():
        sub.status = "missing"
        sub.problem = f"no {expected.name}" + (f" (found: {', '.join(others)})" if others else " (empty folder)")
        return sub
    if others:
        sub.notes.append(f"ignored extra files: {', '.join(others)}")
    try:
        nb = nbformat.reads(expected.read_text(encoding="utf-8"), as_version=4)
    except Exception as exc:  # not JSON, not a notebook, not UTF-8
        sub.status = "error"
        sub.problem = f"{expected.name} is not a valid notebook ({type(exc).__name__}: {str(exc)[:200]})"
        return sub
    sub.path = expected
    dest.mkdir(parents=True)
    nbformat.write(_without_duplicate_ids(nb), dest / expected.name)
    if (folder / "timestamp.txt").is_file():
        shutil.copyfile(folder / "timestamp.txt", dest / "timestamp.txt")
    return sub


def _without_duplicate_ids(nb):
    """Keep nbgrader metadata only on the last cell of each grade_id.

    nbgrader's own DeduplicateIds empties the metadata of earlier copies and
    then fails on the missing ``grade_id`` (so plain nbgrader aborts the whole
    batch); dropping the metadata lets the copies run as ordinary cells.
    """
    seen = set()
    for cell in reversed(nb.cells):
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in seen:
            del cell.metadata["nbgrader"]
        elif grade_id is not None:
            seen.add(grade_id)
    return nb
