"""Benchmark the book build on a copy of the repository.

Measures, as medians over repeated runs in one session:
  cold   `make book` from an empty _build (parallel execution into the cache, then Sphinx)
  plain  a plain sequential `jupyter-book build . --all -W -n --keep-going` from an empty _build
  warm   `make book` again with nothing changed
  edit   `make book` after a text-only edit of one chapter (must re-execute nothing)
and prints the ratio cold / plain. Cold and plain runs alternate.

Usage: .venv/bin/python bench/build.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SKIP = {".git", ".venv", "node_modules", "_build", "_grading"}
EDITED = "book/06_normalization.md"


def copy_repo(dest: Path) -> None:
    for item in REPO.iterdir():
        if item.name not in SKIP:
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, dest / item.name)
    (dest / ".venv").symlink_to(REPO / ".venv")
    (dest / "node_modules").symlink_to(REPO / "node_modules")
    # `make` must not rebuild the venv or node_modules: keep their stamps newer.
    for stamp in (REPO / ".venv" / ".installed", REPO / "node_modules" / ".installed"):
        os.utime(stamp)


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}", "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed, result.stdout + result.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"cold": [], "plain": [], "warm": [], "edit": []}
    reexecuted = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        copy_repo(work)
        for i in range(args.repeats):
            shutil.rmtree(work / "_build", ignore_errors=True)
            times["plain"].append(timed([str(REPO / ".venv/bin/jupyter-book"), "build", ".", "--all", "-W",
                                         "-n", "--keep-going"], work)[0])
            shutil.rmtree(work / "_build", ignore_errors=True)
            times["cold"].append(timed(["make", "book"], work)[0])
            times["warm"].append(timed(["make", "book"], work)[0])
            chapter = work / EDITED
            chapter.write_text(chapter.read_text() + f"\nA sentence added by the benchmark ({i}).\n")
            elapsed, log = timed(["make", "book"], work)
            times["edit"].append(elapsed)
            reexecuted.append(log.count("executed book/") + log.count("Executing notebook"))
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"book build, {args.repeats} runs each, {os.cpu_count()} cores")
    for name, value in medians.items():
        print(f"  {name:<6} median {value:7.1f} s")
    print(f"  notebooks re-executed after a text-only edit: {max(reexecuted)}")
    print(f"  ratio cold / plain sequential: {medians['cold'] / medians['plain']:.2f}")


if __name__ == "__main__":
    main()
