import subprocess
import sys

import pytest

from autograder.course import REPO, nbgrader_env


def autograder_cli(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m autograder ...`` from the repository root, as `make` does (``env`` added to its environment)."""
    result = subprocess.run([sys.executable, "-m", "autograder", *args], cwd=REPO,
                            env={**nbgrader_env(), **(env or {})}, capture_output=True, text=True, timeout=1800)
    if check and result.returncode != 0:
        pytest.fail(f"autograder {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def built():
    """The README's `make book`: the strict build of the whole site."""
    result = subprocess.run(["make", "book"], cwd=REPO, env=nbgrader_env(), capture_output=True,
                            text=True, timeout=2400)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result
