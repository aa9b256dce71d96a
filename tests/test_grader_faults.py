"""A failure of the grader itself, made for real: nbgrader's process is killed
from outside while it grades a notebook. It is retried once on a fresh
process; a second failure leaves that submission without a result, `grade`
says so and how to rerun, and `--resume` grades only it."""
import csv
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat

from autograder.course import REPO, nbgrader_env
from autograder.report import GRADER_FAILED
from submissions import learner_notebook, write_submission

A = "03_scaled_attention"
SLOW = "import time\ntime.sleep(6)  # long enough for the test to see the kernel"


def processes(*needles: str) -> dict[int, str]:
    """pid -> command line of the processes whose command line holds every needle."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if all(n in cmdline for n in needles):
                found[int(entry.name)] = cmdline
    return found


def kill_nbgrader_at(out: Path, kernels_to_kill: set[int], stop: threading.Event) -> None:
    """Kill the nbgrader process (SIGKILL, as an OOM killer or an operator
    would) when its n-th kernel of this run (1-based) is running."""
    seen: list[int] = []  # the kernel's Python process (bwrap's shares its command line; a slot's kernels
    while not stop.is_set():  # share their connection file name)
        for pid, cmdline in processes("ipykernel_launcher", str(out)).items():
            if "python" in Path(cmdline.split()[0]).name and pid not in seen:
                seen.append(pid)
                if len(seen) in kernels_to_kill:
                    time.sleep(1)
                    for server in processes("autograder.nbgrader_server", str(out)):
                        os.kill(server, signal.SIGKILL)
        time.sleep(0.1)


def grade(root: Path, out: Path, *extra: str, kill: set[int] = frozenset()) -> str:
    stop = threading.Event()
    killer = threading.Thread(target=kill_nbgrader_at, args=(out, kill, stop))
    killer.start()
    try:
        result = subprocess.run([sys.executable, "-m", "autograder", "grade", str(root), "--out", str(out),
                                 "--workers", "1", *extra], cwd=REPO, env=nbgrader_env(),
                                capture_output=True, text=True, timeout=900)
    finally:
        stop.set()
        killer.join()
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def detail(out: Path) -> dict:
    with open(out / "grades_detail.csv", newline="") as fh:
        return {(r["student_id"], r["grade_id"]): r for r in csv.DictReader(fh)}


def test_grader_failures_are_retried_reported_and_resumed(tmp_path):
    root, out = tmp_path / "submitted", tmp_path / "out"
    slow = learner_notebook(A)
    slow.cells.insert(1, nbformat.v4.new_code_cell(SLOW))
    for student in ("a_killed_once", "b_killed_twice"):
        write_submission(root, student, A, slow)
    write_submission(root, "c_untouched", A, learner_notebook(A))

    # Kernels in order: a (killed), a again, b (killed), b again (killed), c.
    stdout = grade(root, out, kill={1, 3, 4})
    rows = detail(out)
    mine = {s: [r for (st, _), r in rows.items() if st == s] for s in ("a_killed_once", "b_killed_twice", "c_untouched")}
    assert all(r["status"] == "passed" and r["score"] == r["max_score"] for r in mine["a_killed_once"])
    assert all(r["status"] == "passed" for r in mine["c_untouched"])
    assert all(r["status"] == "error" and r["review"].startswith(GRADER_FAILED) for r in mine["b_killed_twice"])
    assert "1 submission(s) could not be graded because the grader failed" in stdout
    assert f"rerun: python -m autograder grade {root} --out {out} --resume" in stdout
    assert (out / "logs" / "b_killed_twice" / f"{A}.log").exists()

    stdout = grade(root, out, "--resume")
    assert "resuming: 2 submission(s) already have a result" in stdout
    again = detail(out)
    assert all(again[k]["status"] == "passed" for k in again if k[0] == "b_killed_twice")
    assert {k: v for k, v in again.items() if k[0] != "b_killed_twice"} == \
        {k: v for k, v in rows.items() if k[0] != "b_killed_twice"}
    with open(out / "grades.csv", newline="") as fh:
        scores = {r["student_id"]: float(r["score"]) for r in csv.DictReader(fh)}
    assert scores["b_killed_twice"] == scores["c_untouched"] == 11
