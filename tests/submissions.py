"""Build realistic learner submissions: the released notebook with its
solution cells filled in from the solution notebook, optionally with edits
that reproduce a typical mistake."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbgrader import utils

from autograder.course import EXERCISES, NOTEBOOKS, SOLUTIONS

SOLUTION_BLOCK = re.compile(r"[ \t]*### BEGIN SOLUTION\n(.*?)[ \t]*### END SOLUTION\n?", re.S)


def solution_code(assignment: str, solutions: Path = SOLUTIONS) -> dict[str, list[str]]:
    """grade_id -> the code between BEGIN/END SOLUTION, block by block."""
    nb = nbformat.read(solutions / assignment / f"{NOTEBOOKS[assignment]}.ipynb", as_version=4)
    return {c.metadata.nbgrader["grade_id"]: SOLUTION_BLOCK.findall(c.source + "\n")
            for c in nb.cells if utils.is_solution(c)}


def learner_notebook(assignment: str, edits: dict[str, list[tuple[str, str]]] | None = None,
                     answered: bool = True, released: Path | None = None, solutions: Path = SOLUTIONS):
    """The released notebook (``released``, default the one in exercises/) with
    each code stub replaced by the solution code of ``solutions``.

    ``edits`` maps a solution cell's grade_id to (old, new) replacements applied
    to its code (each ``old`` must occur); ``answered=False`` leaves the stubs.
    """
    nb = nbformat.read(released or EXERCISES / assignment / f"{NOTEBOOKS[assignment]}.ipynb", as_version=4)
    if not answered:
        return nb
    blocks = solution_code(assignment, solutions)
    for cell in nb.cells:
        if not utils.is_solution(cell) or cell.cell_type != "code":
            continue
        gid = cell.metadata.nbgrader["grade_id"]
        code = iter(blocks[gid])
        stub = re.compile(r"([ \t]*)# YOUR CODE HERE\n[ \t]*raise NotImplementedError\(\)")
        cell.source = stub.sub(lambda m: _indent(next(code), m.group(1)), cell.source)
        for old, new in (edits or {}).get(gid, []):
            assert old in cell.source, f"{old!r} not in {gid}"
            cell.source = cell.source.replace(old, new)
    return nb


def _indent(code: str, indent: str) -> str:
    lines = code.rstrip("\n").splitlines()
    base = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(indent + line[base:] if line.strip() else "" for line in lines)


def write_submission(root: Path, student: str, assignment: str, nb) -> Path:
    """Write ``nb`` as ``root/student/assignment/<notebook>.ipynb``."""
    path = root / student / assignment / f"{NOTEBOOKS[assignment]}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path
