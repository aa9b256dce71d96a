"""Regenerate learner notebooks from the solution notebooks with nbgrader."""
from __future__ import annotations

from pathlib import Path

from . import releases
from .course import EXERCISES, NOTEBOOKS, nbgrader


class ReleaseError(RuntimeError):
    """nbgrader could not generate an assignment (its log is the message)."""


def release(assignments: list[str], release_dir: Path = EXERCISES, db_url: str | None = None) -> None:
    """Run ``nbgrader generate_assignment`` for each assignment into ``release_dir``.

    Without ``db_url`` the gradebook is not touched (``--no-db``); with it, the
    assignment and its graded cells are recorded there, as autograding needs.
    A release into ``exercises/`` (what learners fetch) is recorded in
    :data:`autograder.releases.LEDGER`. Raises ReleaseError with nbgrader's
    output when it fails.
    """
    for assignment in assignments:
        args = ["generate_assignment", assignment, "--force",
                f"--CourseDirectory.release_directory={Path(release_dir).resolve()}"]
        args += [f"--CourseDirectory.db_url={db_url}"] if db_url else ["--no-db"]
        result = nbgrader(*args)
        if result.returncode != 0:
            raise ReleaseError(f"generate_assignment {assignment} failed:\n{result.stdout}")
        if Path(release_dir).resolve() == EXERCISES.resolve():
            releases.record(assignment, EXERCISES / assignment / f"{NOTEBOOKS[assignment]}.ipynb")
