"""What learner code can see of the grader inside the sandbox: the learner-side
package only, never the check library (references, mistakes, hidden tests)."""
import subprocess
import sys

from autograder.course import REPO
from autograder.sandbox import Sandbox

PROBE = r"""
import glob, importlib, sys
try:
    import autograder.checks
    print("IMPORTED", autograder.checks.__file__)
except ImportError as exc:
    print("REFUSED", exc)
try:
    importlib.import_module("autograder.checks.scaled_attention")
    print("IMPORTED reference")
except ImportError as exc:
    print("REFUSED reference")
import autograder.learner_side.call, autograder.learner_side.wire, autograder.learner_side.wrappers
print("LEARNER SIDE OK")
print("VISIBLE", sorted(p.removeprefix(sys.argv[1]) for p in glob.glob(sys.argv[1] + "/**/*.py", recursive=True)))
"""


def test_sandbox_sees_the_learner_side_package_and_no_check_library():
    argv = Sandbox().wrap([sys.executable, "-c", PROBE, str(REPO / "autograder")], cwd="/tmp")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    out = result.stdout
    assert "REFUSED autograder.checks, the course's grader, is not available to notebook code" in out, result
    assert "REFUSED reference" in out and "IMPORTED" not in out, out
    assert "LEARNER SIDE OK" in out, result.stderr
    visible = eval(out.split("VISIBLE ", 1)[1])  # noqa: S307 (our own probe's list literal)
    assert visible and all(p.startswith(("/learner_side/", "/__init__.py", "/checks/__init__.py")) for p in visible)
    # the one file under checks/ is the stub, not the package
    assert "/checks/core.py" not in visible and "/checks/scaled_attention.py" not in visible
