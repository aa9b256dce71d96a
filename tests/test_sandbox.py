"""The pieces of grading that learner code never reaches: the kernel launcher
and the long-lived nbgrader process (the attack corpus grades through both),
and what learner processes start with: an allow-listed environment, a cgroup
per submission (memory, processes) and a size-limited runtime folder."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jupyter_client import KernelManager

from autograder import cgroups
from autograder.course import nbgrader_env
from autograder.grade import _Grader
from autograder.nbgrader_server import NbgraderServer
from autograder.sandbox import Limits, Sandbox, write_kernelspec


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


# --- a clean environment and limits per submission (issue 11) ---

CANARY = "AUTOGRADER_TEST_CANARY"
ALLOWED = {"PATH", "HOME", "LANG", "LC_ALL", "MPLBACKEND", "MPLCONFIGDIR", "PYTHONPATH", "PWD"}  # bwrap sets PWD
# What the kernel sets itself (ipykernel/zmqshell.py init_environment; debugpy's pydevd: PYDEVD_USE_FRAME_EVAL).
KERNEL_SETS = {"TERM", "CLICOLOR", "FORCE_COLOR", "CLICOLOR_FORCE", "PAGER", "GIT_PAGER", "PYDEVD_USE_FRAME_EVAL"}
# Test processes run as a user of their own, outside the range grade.py uses,
# so that no other test's process limit counts them.
TEST_UID = 1_900_000 + os.getpid() % 10_000
PRINT_ENV = "import json, os; print(json.dumps(dict(os.environ)))"
# Four processes that touch 1 GiB each: under the address-space limit of each, not of all together.
FORK_AND_TOUCH = r"""
import os, time
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        data = b"x" * 2**30
        time.sleep(2)
        os._exit(0)
    children.append(pid)
print(sorted(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children))
"""
FORK_BOMB = r"""
import os, time
end = time.monotonic() + 3
while time.monotonic() < end:
    try:
        os.fork()
    except OSError:
        pass
time.sleep(600)
"""
# Run in a kernel: its environment, and 64 MiB written into its runtime folder (that of its connection file).
KERNEL_PROBE = r"""
import errno, json, os, sys
print("ENV", json.dumps(sorted(os.environ)))
runtime = os.path.dirname(sys.argv[sys.argv.index("-f") + 1])
try:
    with open(os.path.join(runtime, "filler"), "wb") as fh:
        for _ in range(64):
            fh.write(b"x" * 2**20)
    print("WROTE 64 MiB")
except OSError as exc:
    print("ERROR", errno.errorcode[exc.errno])
"""


@pytest.fixture
def slot_cgroup(tmp_path):
    """A slot's cgroup below a run's, removed afterwards."""
    run = cgroups.create_run(f"autograder-test-{os.getpid()}-{tmp_path.name}")
    group = run.child("slot0")
    try:
        yield group
    finally:
        group.remove()
        run.remove()


def _mounted(path: Path) -> bool:
    return any(line.split()[4] == str(path) for line in Path("/proc/self/mountinfo").read_text().splitlines())


@pytest.mark.parametrize("enabled", [True, False], ids=["sandboxed", "unsandboxed"])
def test_learner_processes_start_from_the_allow_list_only(monkeypatch, enabled):
    monkeypatch.setenv(CANARY, "grader-secret")
    argv = Sandbox(enabled=enabled, uid=TEST_UID).wrap([sys.executable, "-c", PRINT_ENV], cwd="/tmp")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)
    assert CANARY not in env and "grader-secret" not in result.stdout
    assert set(env) <= ALLOWED and env["HOME"] == "/tmp" and env["LC_ALL"] == "C.UTF-8", env


def test_memory_limit_holds_for_all_processes_of_a_submission(slot_cgroup):
    """4 x 1 GiB under memory_mb=1536: each process keeps under its own
    address-space limit, so only the cgroup stops them."""
    slot_cgroup.reset(memory_mb=1536, processes=64, cpus=1)
    limits = Limits(memory_mb=1536)
    run = [sys.executable, "-c", FORK_AND_TOUCH]
    per_process = subprocess.run(Sandbox(limits, uid=TEST_UID).wrap(run, cwd="/tmp"),
                                 capture_output=True, text=True, timeout=120)
    assert per_process.stdout.strip() == "[0, 0, 0, 0]", per_process  # 4 GiB in all: prlimit alone lets it be
    in_cgroup = subprocess.run(Sandbox(limits, uid=TEST_UID, cgroup_procs=slot_cgroup.procs).wrap(run, cwd="/tmp"),
                               capture_output=True, text=True, timeout=120)
    assert -9 in json.loads(in_cgroup.stdout), in_cgroup  # the OOM killer's SIGKILL
    memory = slot_cgroup.dirs[0]
    peak = int((memory / ("memory.peak" if slot_cgroup.version == 2 else "memory.max_usage_in_bytes")).read_text())
    assert 2**30 < peak <= 1536 * 2**20


def test_fork_bomb_is_held_by_the_process_limit_and_killed_with_its_cgroup(slot_cgroup):
    slot_cgroup.reset(memory_mb=1024, processes=64, cpus=1)
    pids = slot_cgroup.dirs[0 if slot_cgroup.version == 2 else 1]
    box = Sandbox(Limits(processes=4096), uid=TEST_UID, cgroup_procs=slot_cgroup.procs)  # the user's limit is far
    proc = subprocess.Popen(box.wrap([sys.executable, "-c", FORK_BOMB], cwd="/tmp"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        most = 0
        for _ in range(50):
            time.sleep(0.1)
            most = max(most, int((pids / "pids.current").read_text()))
        refused = int((pids / "pids.events").read_text().split()[1])
    finally:
        slot_cgroup.kill()
    assert proc.wait(timeout=10) != 0
    assert 32 < most <= 64 and refused > 0, (most, refused)
    assert (pids / "cgroup.procs").read_text() == ""


def test_fallback_to_per_process_limits_says_so_once(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroups, "ROOT", tmp_path / "no-cgroup-filesystem")
    monkeypatch.setenv("PATH", str(tmp_path / "no-mount-command"))
    logged = []
    grader = _Grader(tmp_path / "out", Limits(), True, 2, {}, tmp_path / "work", logged.append)
    try:
        assert len(logged) == 2, logged  # once per run, not per slot
        assert "limits hold per process, not per submission" in logged[0]
        assert str(tmp_path / "no-cgroup-filesystem") in logged[0]
        assert "runtime folders lie on the grader's disk" in logged[1]
        slot = grader.slots.get()
        assert slot.cgroup is None and not slot.tmpfs
        assert slot.box.wrap(["true"])[0] == "bwrap"  # no step that joins a cgroup
        slot.fresh_cgroup()
        slot.fresh_runtime()
        assert slot.runtime.stat().st_uid == slot.box.uid and not _mounted(slot.runtime)
    finally:
        grader.close()
    assert len(logged) == 2, logged


def test_a_slot_kernel_has_a_clean_environment_a_cgroup_and_a_small_runtime_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(CANARY, "grader-secret")
    out, work = tmp_path / "out", tmp_path / "work"
    notebook_folder = out / "autograded" / "ada" / "a"
    notebook_folder.mkdir(parents=True)
    logged = []
    grader = _Grader(out, Limits(file_size_mb=256), True, 1, {}, work, logged.append)
    try:
        assert logged == []
        slot = grader.slots.get()
        slot.fresh_cgroup()
        slot.fresh_runtime()
        assert _mounted(slot.runtime)
        monkeypatch.setenv("JUPYTER_PATH", str(work / "slot0"))  # the slot's kernelspec, as nbgrader finds it
        monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(slot.runtime))
        kernel = KernelManager(kernel_name="python3", transport="ipc", ip=str(slot.runtime / "kernel"))
        kernel.start_kernel(cwd=str(notebook_folder), env=nbgrader_env())  # as nbgrader's kernels get it
        client = kernel.client()
        client.start_channels()
        client.wait_for_ready(timeout=120)
        printed = []
        reply = client.execute_interactive(KERNEL_PROBE, timeout=120, output_hook=lambda msg: printed.append(
            msg["content"].get("text", "")))
        client.stop_channels()
        assert reply["content"]["status"] == "ok", reply["content"]
        printed = "".join(printed)
        env = json.loads(printed.split("ENV ", 1)[1].splitlines()[0])
        assert CANARY not in env and set(env) <= ALLOWED | KERNEL_SETS, env
        assert "ERROR ENOSPC" in printed, printed
        launcher = kernel.provisioner.process  # the launcher became bubblewrap after joining the cgroup
        assert all(str(launcher.pid) in Path(procs).read_text().split() for procs in slot.cgroup.procs)
    finally:
        grader.close()
    assert launcher.wait(timeout=10) == -9  # killed with the cgroup, not shut down
    assert not any(d.exists() for d in slot.cgroup.dirs + grader.cgroup.dirs)
    assert not _mounted(slot.runtime) and logged == []
