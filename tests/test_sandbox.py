"""The pieces of grading that learner code never reaches: the kernel launcher
and the long-lived nbgrader process (the attack corpus grades through both)."""
import subprocess
import sys
import time
from pathlib import Path

from autograder.course import nbgrader_env
from autograder.nbgrader_server import NbgraderServer
from autograder.sandbox import Sandbox, write_kernelspec


def test_kernel_launcher_refuses_a_folder_outside_the_graded_ones(tmp_path):
    graded, runtime, elsewhere = tmp_path / "autograded", tmp_path / "runtime", tmp_path / "elsewhere"
    for folder in (graded, runtime, elsewhere):
        folder.mkdir()
    write_kernelspec(tmp_path / "spec", Sandbox(), graded, runtime)
    connection = tmp_path / "kernel-1.json"
    connection.write_text("{}")
    launch = [sys.executable, "-m", "autograder.sandbox", "kernel", str(tmp_path / "spec" / "sandbox.json"),
              str(connection)]
    result = subprocess.run(launch, cwd=elsewhere, env=nbgrader_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"refusing to start a kernel in {elsewhere}" in result.stderr
    assert list(runtime.iterdir()) == []  # no connection file was handed out


def test_nbgrader_server_that_cannot_start_reports_why_and_starts_again(tmp_path):
    log = tmp_path / "nbgrader.log"
    server = NbgraderServer(["--CourseDirectory.root=" + str(tmp_path / "missing"), "--no-such-flag"], {}, log, 4096)
    try:
        for _ in range(2):  # a dead process is replaced on the next request
            success, message, died = server.autograde("03_scaled_attention", "ada", timeout=120)
            assert not success and died
            assert message.startswith("nbgrader stopped unexpectedly") and "no-such-flag" in message
    finally:
        server.close()
    assert server.proc is None


def test_nbgrader_server_runs_under_the_memory_limit(tmp_path):
    """nbgrader holds a kernel's outputs in memory: an endless stream of output
    must hit this limit, not exhaust the machine."""
    server = NbgraderServer([], {}, tmp_path / "nbgrader.log", memory_mb=3000)
    server.start()
    proc = Path("/proc") / str(server.proc.pid)
    try:
        for _ in range(200):  # until prlimit has set the limit and exec'd Python
            if not (proc / "exe").resolve().name.startswith("prlimit"):
                break
            time.sleep(0.05)
        limits = (proc / "limits").read_text()
        address_space = next(line for line in limits.splitlines() if line.startswith("Max address space"))
        assert address_space.split()[3:5] == [str(3000 * 2**20)] * 2, address_space
    finally:
        server.close()
