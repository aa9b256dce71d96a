import subprocess
import sys

import pytest

from autograder.course import REPO, nbgrader_env


def autograder_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m autograder ...`` from the repository root, as `make` does."""
    result = subprocess.run([sys.executable, "-m", "autograder", *args], cwd=REPO,
                            env=nbgrader_env(), capture_output=True, text=True, timeout=1800)
    if check and result.returncode != 0:
        pytest.fail(f"autograder {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result
