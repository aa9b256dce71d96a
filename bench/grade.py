"""Benchmark: plain nbgrader against `python -m autograder grade` on one class.

Both grade the same class of submissions of 03_scaled_attention (the
solution, typical mistakes and blank notebooks, built as in the tests) and
produce the same deliverables: plain nbgrader runs generate_assignment,
autograde (all students in one process), generate_feedback and a CSV export,
without a sandbox or trusted verification; ours runs the whole `grade`
command (per-submission nbgrader runs in the sandbox plus the trusted
verification worker). Runs alternate, and the medians and their ratio are
printed.

Usage: .venv/bin/python bench/grade.py [--students 20] [--repeats 3] [--workers 1]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from autograder.course import INTAKE, gradebook_url, nbgrader, nbgrader_env, workspace_args  # noqa: E402
from autograder.release import release  # noqa: E402
from submissions import learner_notebook, write_submission  # noqa: E402

A = "03_scaled_attention"
SDPA = "scaled_dot_product_attention"
VARIANTS = [None, {SDPA: [("/ math.sqrt(d_k)", "/ d_k")]}, {SDPA: [("/ math.sqrt(d_k)", "")]},
            {SDPA: [("dim=-1", "dim=-2")]}, "blank"]


def build_class(root: Path, students: int) -> None:
    for i in range(students):
        variant = VARIANTS[i % len(VARIANTS)]
        nb = learner_notebook(A, answered=False) if variant == "blank" else learner_notebook(A, variant)
        write_submission(root, f"student{i:03d}", A, nb)


def plain(root: Path, out: Path) -> float:
    out.mkdir(parents=True)
    start = time.perf_counter()
    release([A], release_dir=out / "release", db_url=gradebook_url(out))
    shutil.copytree(root, out / INTAKE)  # the folder workspace_args gives nbgrader
    for step in ("autograde", "generate_feedback"):
        result = nbgrader(step, A, "--force", *workspace_args(out))
        assert result.returncode == 0, result.stdout[-2000:]
    result = nbgrader("export", f"--to={out / 'grades.csv'}", *workspace_args(out))
    assert result.returncode == 0, result.stdout[-2000:]
    return time.perf_counter() - start


def ours(root: Path, out: Path, workers: int) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autograder", "grade", str(root), "--out", str(out),
                    "--workers", str(workers)], cwd=REPO, env=nbgrader_env(), check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"plain nbgrader": [], "autograder grade": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "class"
        build_class(root, args.students)
        for i in range(args.repeats):
            times["plain nbgrader"].append(plain(root, Path(tmp) / f"plain{i}"))
            times["autograder grade"].append(ours(root, Path(tmp) / f"ours{i}", args.workers))
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.students} submissions, {args.repeats} runs each, workers={args.workers}")
    for name, value in medians.items():
        print(f"  {name:<18} median {value:7.1f} s  ({value / args.students:.2f} s per submission)")
    print(f"  ratio (ours / plain): {medians['autograder grade'] / medians['plain nbgrader']:.2f}")


if __name__ == "__main__":
    main()
