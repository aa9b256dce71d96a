"""Read a folder (or .zip) of submissions and copy them into nbgrader's layout.

The submitted files are only read: everything nbgrader touches is a copy under
``<out>/submitted``, which may neither be nor contain nor lie inside the
submissions folder. Problems that keep a notebook from being graded become
statuses of that submission, never exceptions:

* ``missing``: no assignment folder, or no notebook of the expected name in it.
* ``error``: a symbolic link or special file (FIFO, socket, device) in the
  assignment folder, or an assignment folder that is itself a link (links are
  never followed, special files never opened); a notebook larger than
  ``MAX_NOTEBOOK_BYTES``, not UTF-8 JSON, not valid for nbformat, or whose
  nbgrader cell metadata nbgrader's own validator rejects or nbgrader's
  autograde would fail on (a grade_id the release does not have, or a cell
  whose grade/solution/task role differs from the released cell's).

A student folder that is a link, or whose name is not a usable student id, is
left out of the batch with a line in ``skipped``. Every path is opened with
``O_NOFOLLOW`` relative to its parent folder's descriptor, so a folder swapped
for a link while intake runs is refused too.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import stat
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import nbformat
from nbgrader.nbgraderformat import MetadataValidator, SchemaTooNewError, SchemaTooOldError, ValidationError
from nbgrader.utils import parse_utc

from .course import NOTEBOOKS, SOLUTIONS

#: A student id, matched whole (``$`` would accept a trailing newline that nbgrader
#: strips); nothing in it is whitespace, a glob or a regex character, so the id
#: nbgrader reads back from the folder name is this very string.
STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")
MAX_UNZIPPED_BYTES = 512 * 2**20
MAX_NOTEBOOK_BYTES = 64 * 2**20
MAX_TIMESTAMP_BYTES = 256
TIMESTAMP = "timestamp.txt"
# The names an LMS gives a resubmission of NAME.ipynb: "NAME (1).ipynb", "NAME-1.ipynb".
LMS_RENAMED = re.compile(r"(?P<stem>.+?)(?: \(\d+\)|-\d+)\.ipynb")
ROLES = ("grade", "solution", "task")  # the flags nbgrader cannot restore from the release

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO that replaced a checked file must not block the batch.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEVER_READ = "links are never followed and special files never read"

_VALIDATOR = MetadataValidator()
# Its "cell type has changed" warning passes an argument without a placeholder,
# which makes the logging module print a traceback: keep its log quiet.
_VALIDATOR.log = logging.getLogger(f"{__name__}.nbgrader")
_VALIDATOR.log.addHandler(logging.NullHandler())
_VALIDATOR.log.propagate = False
_SCHEMA = jsonschema.validators.validator_for(_VALIDATOR.schema)(_VALIDATOR.schema)


@dataclass
class Submission:
    """One student's work on one assignment.

    ``status`` is None when the notebook was copied for grading; otherwise it
    is the status of every graded cell ("missing" or "error") and ``problem``
    says why. ``sources`` maps each grade_id to the source of every submitted
    cell that carries it, in notebook order and as read (earlier duplicates
    included, which the copy for nbgrader no longer marks).
    """

    student: str
    assignment: str
    path: Path | None = None  # the submitted notebook (read, never written)
    status: str | None = None
    problem: str = ""
    notes: list[str] = field(default_factory=list)
    sources: dict[str, list[str]] = field(default_factory=dict)

    @property
    def notebook(self) -> str:
        return NOTEBOOKS[self.assignment]


class IntakeError(ValueError):
    """The submissions path itself is unusable (a usage error)."""


class _Refused(Exception):
    """A submission that cannot be graded: args are (status, problem)."""


def unpack(source: Path, scratch: Path) -> Path:
    """The folder to read: ``source`` itself, or a .zip extracted into ``scratch``.

    A symbolic-link entry of the zip is not extracted: a link to os.devnull
    stands in for it, so that :func:`collect` refuses that submission (or
    student folder) like a link in a folder.

    Raises IntakeError for a path that does not exist, a bad zip, an entry
    that would land outside ``scratch``, a link entry where another entry is,
    or more than 512 MiB unpacked.
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
        links = [i for i in infos if stat.S_ISLNK(i.external_attr >> 16)]
        archive.extractall(scratch, [i for i in infos if not stat.S_ISLNK(i.external_attr >> 16)])
    for info in links:  # after every file, so that nothing is ever written through one
        parts = [p for p in info.filename.split("/") if p not in ("", ".", "..")]  # zipfile's own sanitising
        if not parts:
            continue
        place = scratch.joinpath(*parts)
        try:
            place.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.devnull, place)
        except OSError:
            raise IntakeError(f"{source} has a link entry where another entry is: {info.filename}") from None
    root = scratch
    # A zip of the `submitted/` folder itself: descend into its single folder.
    while True:
        children = [p for p in root.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        if len(children) == 1 and stat.S_ISDIR(children[0].lstat().st_mode) and not _looks_like_student(children[0]):
            root = children[0]
        else:
            return root


def _looks_like_student(path: Path) -> bool:
    return any(p.name in NOTEBOOKS for p in path.iterdir())


def collect(root: Path, assignments: list[str] | None, submitted: Path) -> tuple[list[Submission], list[str]]:
    """Find every student's submissions under ``root`` and copy them to ``submitted``.

    ``assignments`` restricts the batch; when None, the batch is every known
    assignment that anyone submitted. Every student gets one Submission per
    assignment of the batch (``missing`` where nothing was handed in; see the
    module docstring for ``error``). Returns the submissions and lines
    describing what was skipped: entries of ``root`` that are links, files, or
    folders whose name is not a student id (letters, digits, ``_ . @ -``, not
    starting with a punctuation mark), and assignment folders of no known
    assignment.

    The copy of a notebook has nbgrader's metadata only on the last cell of
    each grade_id. A readable ``timestamp.txt`` is copied as nbgrader's parser
    (``nbgrader.utils.parse_utc``) reads it, in UTC; one that is larger than
    ``MAX_TIMESTAMP_BYTES``, empty or unparsable is not copied and a note says
    the submission is graded as on time.

    Raises IntakeError when a copy would be, contain or lie inside ``root``.
    """
    skipped: list[str] = []
    students: dict[str, dict[str, str]] = {}  # student -> entry -> kind
    with _opened(root) as root_fd:
        for name, kind in sorted(_listing(root_fd).items()):
            if name.startswith("."):
                continue
            if kind == "symbolic link":
                skipped.append(f"{_shown(name)}: a symbolic link, not a student folder ({_NEVER_READ})")
            elif kind != "folder":
                skipped.append(f"{_shown(name)}: not a student folder (expected <student_id>/<assignment_id>/)")
            elif not STUDENT_ID.fullmatch(name):
                skipped.append(f"{_shown(name)}: not a usable student id (letters, digits, _ . @ -)")
            else:
                try:
                    with _opened(name, root_fd) as fd:
                        students[name] = _listing(fd)
                except OSError as exc:
                    skipped.append(f"{_shown(name)}: could not be read ({exc.strerror})")
        found = {a for listing in students.values() for a, kind in listing.items()
                 if kind in ("folder", "symbolic link")}
        for name in sorted(found - set(NOTEBOOKS)):
            skipped.append(f"{_shown(name)}: not an assignment of this course")
        batch = assignments or [a for a in NOTEBOOKS if a in found]
        submissions = [_take(root, root_fd, student, assignment, listing.get(assignment), submitted)
                       for student, listing in students.items() for assignment in batch]
    return submissions, skipped


def _take(root: Path, root_fd: int, student: str, assignment: str, kind: str | None,
          submitted: Path) -> Submission:
    sub = Submission(student, assignment)
    dest = submitted / student / assignment
    resolved_dest, resolved_root = dest.resolve(), root.resolve()
    if resolved_dest.is_relative_to(resolved_root) or resolved_root.is_relative_to(resolved_dest):
        raise IntakeError(f"the copy for grading {dest} would overlap SUBMISSIONS {root}: "
                          "choose an output folder outside it")
    shutil.rmtree(dest, ignore_errors=True)  # a stale copy must not be graded
    try:
        nb, timestamp, name = _read(root_fd, sub, kind)
    except _Refused as refusal:
        sub.status, sub.problem = refusal.args
        return sub
    sub.path = root / student / assignment / name
    dest.mkdir(parents=True)
    nbformat.write(_without_duplicate_ids(nb), dest / f"{sub.notebook}.ipynb")
    if timestamp:
        (dest / TIMESTAMP).write_text(timestamp + "\n", encoding="utf-8")
    return sub


def _read(root_fd: int, sub: Submission, kind: str | None) -> tuple[nbformat.NotebookNode, str | None, str]:
    """The validated notebook of ``sub``, the text of its timestamp (None: none
    usable) and the notebook's file name: the expected one or, when it is
    absent, the only one an LMS renamed (``name (1).ipynb``, ``name-1.ipynb``).

    ``kind`` is what ``root/student/assignment`` is (None: absent). Raises _Refused.
    """
    if kind is None:
        raise _Refused("missing", "no submission")
    if kind == "file":
        raise _Refused("missing", f"{sub.assignment} is a file, not a folder")
    if kind != "folder":
        raise _Refused("error", f"{sub.assignment} is a {kind}, not a folder: {_NEVER_READ}")
    expected = f"{sub.notebook}.ipynb"
    try:
        with _opened(sub.student, root_fd) as student_fd, _opened(sub.assignment, student_fd) as fd:
            listing = _listing(fd)
            refused = [f"{_shown(n)} is a {k}" for n, k in sorted(listing.items()) if k not in ("file", "folder")]
            if refused:
                raise _Refused("error", f"{', '.join(refused)}: {_NEVER_READ}")
            name = expected
            renamed = [n for n, k in listing.items() if k == "file" and LMS_RENAMED.fullmatch(n)
                       and LMS_RENAMED.fullmatch(n)["stem"] == sub.notebook]
            if listing.get(expected) != "file" and len(renamed) == 1:
                name = renamed[0]
                sub.notes.append(f"graded {_shown(name)} as {expected} (the name an LMS gives a resubmission)")
            others = sorted(_shown(n) for n, k in listing.items() if k != "file" or n not in (name, TIMESTAMP))
            if listing.get(name) != "file":
                raise _Refused("missing", f"no {expected}" + (f" (found: {', '.join(others)})" if others
                                                               else " (empty folder)"))
            if others:
                sub.notes.append(f"ignored extra files: {', '.join(others)}")
            data = _bounded_read(name, fd, MAX_NOTEBOOK_BYTES)
            if data is None:
                raise _Refused("error", f"{_shown(name)} is larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB")
            nb = _notebook(data, name, sub)
            timestamp = _timestamp(fd, sub) if listing.get(TIMESTAMP) == "file" else None
    except OSError as exc:  # a file or folder replaced (by a link) after it was listed
        raise _Refused("error", f"{_shown(exc.filename or sub.assignment)} could not be read ({exc.strerror}); "
                                f"{_NEVER_READ}") from None
    return nb, timestamp, name


def _notebook(data: bytes, name: str, sub: Submission) -> nbformat.NotebookNode:
    """Notebook ``name`` parsed from ``data`` and validated; fills ``sub.sources``. Raises _Refused."""
    try:
        text = data.decode("utf-8")
        raw = json.loads(text, parse_constant=_no_constant)
        if not isinstance(raw, dict):
            raise ValueError(f"a JSON {type(raw).__name__}, not an object")
        with warnings.catch_warnings():  # nbformat's notices of repairs it makes itself (duplicate cell ids)
            warnings.simplefilter("ignore")
            nbformat.validate(raw)
            captured: dict = {}
            nb = nbformat.reads(text, as_version=4, capture_validation_error=captured)
        if captured:  # an older format that did not convert to a valid version 4
            raise captured["ValidationError"]
    except nbformat.ValidationError as exc:
        raise _Refused("error", f"{name} is not a valid notebook: {_located(exc)}") from None
    except Exception as exc:  # whatever the decoder and parsers raise: not UTF-8, not JSON, not a notebook
        raise _Refused("error", f"{name} is not a valid notebook ({type(exc).__name__}: {_short(str(exc))})") from None
    problem = _nbgrader_problem(nb, _released_roles(sub.assignment))
    if problem:
        raise _Refused("error", f"{name}: {problem}")
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id:
            sub.sources.setdefault(grade_id, []).append(cell.source)
    return nb


def _no_constant(word: str):
    raise ValueError(f"{word} is not a JSON number")


def _located(exc: nbformat.ValidationError) -> str:
    path = list(getattr(exc, "absolute_path", []))
    where = ""
    if len(path) >= 2 and path[0] == "cells" and isinstance(path[1], int):
        where, path = f"cell {path[1] + 1}", path[2:]
    where = ", ".join(filter(None, [where, ".".join(map(str, path))]))
    return f"{where}: {_short(exc.message)}" if where else _short(exc.message)


def _nbgrader_problem(nb, released: dict[str, dict] | None) -> str:
    """The first nbgrader metadata nbgrader's validator rejects or autograde
    would fail on, naming the cell (counted from 1) and the field; "" if none.

    ``released`` is grade_id -> the released cell's type and roles (None: no
    solution notebook to compare with).
    """
    for number, cell in enumerate(nb.cells, 1):
        if "nbgrader" not in cell.metadata:
            continue
        meta = cell.metadata.nbgrader
        where = f"cell {number}"
        if not isinstance(meta, dict):
            return f"{where}: the nbgrader metadata is {type(meta).__name__}, not an object"
        error = jsonschema.exceptions.best_match(_SCHEMA.iter_errors(meta))
        if error is not None:
            what = f"field '{_short(str(error.path[0]), 60)}'" if error.path else "metadata"
            return f"{where}: nbgrader {what}: {_short(error.message)}"
        grade_id = meta.get("grade_id")
        if grade_id:
            where = f"{where} (grade_id '{_short(grade_id, 60)}')"
        try:
            _VALIDATOR.validate_cell(cell)
        except (ValidationError, SchemaTooOldError, SchemaTooNewError) as exc:
            return f"{where}: {_short(str(exc).splitlines()[0])}"
        if released is None or not grade_id:
            continue
        if grade_id not in released:
            if any(meta.get(flag, False) for flag in ("grade", "solution", "locked")):
                return f"{where}: the released notebook has no cell with this grade_id"
            continue  # nbgrader drops an unknown id from an unmarked cell
        for role in ROLES:
            if meta.get(role, False) != released[grade_id][role]:
                return (f"{where}: nbgrader field '{role}' is {json.dumps(meta.get(role, False))}; "
                        f"the released cell has {json.dumps(released[grade_id][role])}")
        if cell.cell_type != released[grade_id]["cell_type"] and "attachments" in cell:
            return (f"{where}: a {released[grade_id]['cell_type']} cell turned {cell.cell_type} with attachments, "
                    "which nbgrader cannot turn back")
    return ""


@functools.cache
def _released_roles(assignment: str) -> dict[str, dict] | None:
    path = SOLUTIONS / assignment / f"{NOTEBOOKS[assignment]}.ipynb"
    if not path.exists():
        return None
    return {c.metadata.nbgrader["grade_id"]: {"cell_type": c.cell_type,
                                              **{r: c.metadata.nbgrader.get(r, False) for r in ROLES}}
            for c in nbformat.read(path, as_version=4).cells if c.metadata.get("nbgrader", {}).get("grade_id")}


def _timestamp(fd: int, sub: Submission) -> str | None:
    """``timestamp.txt`` as nbgrader will read it (UTC), or None with a note."""
    data = _bounded_read(TIMESTAMP, fd, MAX_TIMESTAMP_BYTES)
    try:
        if data is None:
            raise ValueError(f"larger than {MAX_TIMESTAMP_BYTES} bytes")
        text = data.decode("utf-8").strip()
        if not text:
            raise ValueError("empty")
        zone = text.split(" ")[2] if len(text.split(" ")) == 3 else ""
        if zone.lstrip(":").startswith("/") or ".." in zone:  # dateutil's gettz would open that file
            raise ValueError(f"the time zone {zone!r} names a file")
        return str(parse_utc(text))
    except Exception as exc:  # parse_utc raises more than the ValueError nbgrader catches
        sub.notes.append(f"{TIMESTAMP} ignored ({type(exc).__name__}: {_short(str(exc), 100)}): "
                         "graded as submitted on time")
        return None


def _without_duplicate_ids(nb):
    """Keep nbgrader metadata only on the last cell of each grade_id; never raises.

    nbgrader's own DeduplicateIds empties the metadata of earlier copies and
    then fails on the missing ``grade_id`` (so plain nbgrader aborts the whole
    batch); dropping the metadata lets the copies run as ordinary cells.
    """
    seen = set()
    for cell in reversed(nb.cells):
        meta = cell.get("metadata")
        marks = meta.get("nbgrader") if isinstance(meta, dict) else None
        grade_id = marks.get("grade_id") if isinstance(marks, dict) else None
        if not isinstance(grade_id, str):
            continue
        if grade_id in seen:
            del meta["nbgrader"]
        else:
            seen.add(grade_id)
    return nb


@contextmanager
def _opened(name, dir_fd: int | None = None):
    """A folder's descriptor; ``name`` relative to ``dir_fd`` is never a link."""
    fd = os.open(name, _DIR_FLAGS if dir_fd is not None else os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC,
                 dir_fd=dir_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def _listing(fd: int) -> dict[str, str]:
    """Entry name -> kind ("folder", "file", "symbolic link", ...), never following a link."""
    kinds = {}
    with os.scandir(fd) as entries:
        for entry in entries:
            try:
                kinds[entry.name] = _kind(entry.stat(follow_symlinks=False).st_mode)
            except FileNotFoundError:  # removed while listed
                continue
    return kinds


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "folder"), (stat.S_ISREG, "file"), (stat.S_ISLNK, "symbolic link"),
                       (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "device"),
                       (stat.S_ISBLK, "device")):
        if test(mode):
            return kind
    return "special file"


def _bounded_read(name: str, dir_fd: int, limit: int) -> bytes | None:
    """The bytes of regular file ``name``, or None when it holds more than ``limit``."""
    with open(name, "rb", opener=lambda path, _: os.open(path, _FILE_FLAGS, dir_fd=dir_fd)) as fh:
        kind = _kind(os.fstat(fh.fileno()).st_mode)
        if kind != "file":
            raise _Refused("error", f"{_shown(name)} is a {kind}: {_NEVER_READ}")
        data = fh.read(limit + 1)
    return data if len(data) <= limit else None


def _shown(name: str) -> str:
    """A file name as a message shows it: quoted when it holds unprintable characters."""
    return name if name.isprintable() else repr(name)


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
