"""The term's due dates and late policy: ``course.toml`` at the course root.

Late penalties follow nbgrader's own ``LateSubmissionPlugin`` (``penalty_method``
"none" or "zero"); lateness is nbgrader's too: the submission's
``timestamp.txt`` (written by ``nbgrader submit``/``collect``) against the
assignment's due date in the gradebook, plus any extension given there.
"""
from __future__ import annotations

import datetime
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import Gradebook

from .course import REPO

TERM_FILE = REPO / "course.toml"
PENALTY_METHODS = ("none", "zero")


class TermError(ValueError):
    """course.toml is malformed (the message names the entry)."""


@dataclass(frozen=True)
class Term:
    penalty_method: str = "none"
    due: dict[str, datetime.datetime] = field(default_factory=dict)  # assignment -> due date, naive UTC


def load(path: Path = TERM_FILE, assignments=None) -> Term:
    """Read ``path`` (an absent file: no due dates, no penalty).

    Raises TermError for an unknown penalty method, a due date without a time
    zone or of another type, or (when ``assignments`` is given) an unknown
    assignment id.
    """
    if not path.exists():
        return Term()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise TermError(f"{path}: {exc}") from None
    method = data.get("late", {}).get("penalty_method", "none")
    if method not in PENALTY_METHODS:
        raise TermError(f"{path}: [late] penalty_method must be one of {', '.join(PENALTY_METHODS)}, not {method!r}")
    due = {}
    for assignment, when in data.get("due", {}).items():
        if assignments is not None and assignment not in assignments:
            raise TermError(f"{path}: [due] names {assignment!r}, not an assignment of this course")
        if not isinstance(when, datetime.datetime) or when.tzinfo is None:
            raise TermError(f"{path}: [due] {assignment} must be a date and time with its time zone "
                            f"(e.g. 2026-12-07T23:59:00+01:00), not {when!r}")
        due[assignment] = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return Term(method, due)


def apply_due_dates(term: Term, db_url: str, assignments: list[str]) -> None:
    """Write the due dates of ``assignments`` that ``term`` names into the
    gradebook (others keep what the gradebook has, e.g. from ``nbgrader db
    assignment add --duedate``)."""
    with Gradebook(db_url) as gb:
        for assignment in assignments:
            if assignment in term.due:
                gb.update_or_create_assignment(assignment, duedate=term.due[assignment])
