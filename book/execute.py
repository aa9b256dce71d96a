"""Execute the book's chapters into the jupyter-cache, in parallel, before Sphinx.

`make book` runs this first: jupyter-cache's local-parallel executor runs every
chapter whose code changed (one process per core), and the Jupyter Book build
that follows finds each executed notebook in the same cache
(`execute_notebooks: cache`), so it executes nothing itself. A chapter whose
execution fails is reported with its traceback and fails the command.

Usage: python book/execute.py   (from the repository root)
"""
from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

import yaml
from jupyter_cache import get_cache
from jupyter_cache.executors import load_executor
from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData

REPO = Path(__file__).resolve().parent.parent
READER = {"name": "myst_nb_md", "type": "plugin"}  # myst-nb's reader: the same cache key as the build


def chapters() -> list[Path]:
    """The notebook pages of _toc.yml (Markdown files with a kernelspec)."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]] + [entry["file"] for entry in toc.get("chapters", [])]
    paths = [REPO / f"{f}.md" for f in files]
    return [p for p in paths if "kernelspec:" in p.read_text(encoding="utf-8").split("\n---", 1)[0]]


def main() -> int:
    config = yaml.safe_load((REPO / "_config.yml").read_text())["execute"]
    cache = get_cache(REPO / config["cache"])
    pages = chapters()
    for page in pages:
        cache.add_nb_to_project(str(page), read_data=READER)
    records = load_executor("local-parallel", cache=cache).get_records([str(p) for p in pages])
    # jupyter-cache's own local-parallel run hands each process two notebooks at
    # a time, which can put the two longest chapters on one core; hand them out
    # one by one to its worker instead.
    jobs = [ProcessData(r.pk, r.uri, cache, config["timeout"], False) for r in records]
    with multiprocessing.Pool() as pool:
        results = pool.map(ExecutionWorkerLocalMProc(), jobs, chunksize=1)
    # Kernels started side by side can race for a port and never answer; a
    # chapter that failed runs once more alone before it fails the build.
    retry = {uri for code, uri in results if code != 0}
    results = [ExecutionWorkerLocalMProc()(job) if job.uri in retry else (0, job.uri) for job in jobs]
    for code, uri in results:
        if code == 0:
            print(f"executed {Path(uri).relative_to(REPO)}")
    failed = [uri for code, uri in results if code != 0]
    for uri in failed:
        record = cache.get_project_record(uri)
        print(f"FAILED {Path(uri).relative_to(REPO)}\n{record.traceback or ''}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
