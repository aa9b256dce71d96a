"""The course's assignments and how to call nbgrader on them.

Assignment ids and notebook names are fixed by COURSE_SPEC.md.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
EXERCISES = REPO / "exercises"

#: assignment id -> notebook name (without .ipynb), COURSE_SPEC.md order.
NOTEBOOKS = {
    "01_tensors": "tensors",
    "02_qkv": "qkv",
    "03_scaled_attention": "scaled_attention",
    "04_masking": "masking",
    "05_multi_head": "multi_head",
    "06_normalization": "normalization",
    "07_residual": "residual",
    "08_positional_encoding": "positional_encoding",
    "09_elmo_bert": "elmo_bert",
    "10_transformer": "transformer",
}


def available_assignments() -> list[str]:
    """Assignment ids whose solution notebook exists, in course order."""
    return [a for a, nb in NOTEBOOKS.items() if (SOLUTIONS / a / f"{nb}.ipynb").exists()]


# Intake's copies of the submissions under the output folder: what nbgrader
# autogrades. Its own submitted/ folder (where `nbgrader collect` puts the
# learners' files) is only ever read, like any SUBMISSIONS folder.
INTAKE = "intake"


def workspace_args(out: Path) -> list[str]:
    """nbgrader options that put its working folders and gradebook under ``out``
    (nbgrader's submitted_directory is intake's copies, :data:`INTAKE`)."""
    out = out.resolve()
    return [
        f"--CourseDirectory.root={REPO}",
        f"--CourseDirectory.submitted_directory={out / INTAKE}",
        f"--CourseDirectory.autograded_directory={out / 'autograded'}",
        f"--CourseDirectory.feedback_directory={out / 'feedback'}",
        f"--CourseDirectory.db_url={gradebook_url(out)}",
    ]


def gradebook_url(out: Path) -> str:
    """The gradebook under ``out``; concurrent nbgrader runs wait up to 120 s for
    SQLite's write lock (the default 5 s fails under load with --workers)."""
    return f"sqlite:///{(out / 'gradebook.db').resolve()}?timeout=120"


def nbgrader_env() -> dict[str, str]:
    """Environment for nbgrader and its kernels: this interpreter's bin first on
    PATH (nbgrader runs ``alembic`` from PATH) and the repository importable
    (hidden tests import :mod:`autograder.checks`)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "Agg"
    env.pop("NBGRADER_EXECUTION", None)
    return env


def nbgrader(*args: str, timeout: float | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run an nbgrader command from the repository root in its own session,
    with ``env`` added to :func:`nbgrader_env`.

    On ``timeout`` (seconds) the whole process group is killed and
    ``subprocess.TimeoutExpired`` is raised.
    """
    cmd = [sys.executable, "-m", "nbgrader", *args]
    with subprocess.Popen(cmd, cwd=REPO, env={**nbgrader_env(), **(env or {})}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True) as proc:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, output, None)
