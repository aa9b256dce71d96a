"""Every released version of each assignment's test cells (``autograder/releases.json``).

An instructor may fix a test after learners fetched the assignment, or add an
exercise; a learner's notebook then holds the test cells of an earlier
release. ``make release`` records each new release here (committed with
``exercises/``), so that the grader recognises any released version of a test
cell as untouched, and a notebook whose graded cells are exactly those of an
earlier release as made against it (its new cells are ``missing``, not
deleted). Only SHA-256 digests of the test cells' sources are kept.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nbformat
from nbgrader import utils

from .course import REPO

LEDGER = REPO / "autograder" / "releases.json"


def digest(source: str) -> str:
    """The SHA-256 of a cell's source (hex)."""
    return hashlib.sha256(source.encode()).hexdigest()


def fingerprint(notebook) -> dict:
    """A released notebook's graded cells: ``{"cells": [grade_id of each grade
    or solution cell, in order], "tests": {grade_id: digest of a test cell's source}}``."""
    cells = [c for c in notebook.cells if utils.is_grade(c) or utils.is_solution(c)]
    return {"cells": [c.metadata.nbgrader["grade_id"] for c in cells],
            "tests": {c.metadata.nbgrader["grade_id"]: digest(c.source) for c in cells
                      if utils.is_grade(c) and not utils.is_solution(c)}}


def versions(assignment: str, ledger: Path = LEDGER) -> list[dict]:
    """The recorded releases of ``assignment``, oldest first (none if unrecorded)."""
    return json.loads(ledger.read_text()).get(assignment, []) if ledger.exists() else []


def record(assignment: str, released: Path, ledger: Path = LEDGER) -> bool:
    """Add the release in notebook ``released`` unless it equals the latest one;
    returns whether it was added."""
    data = json.loads(ledger.read_text()) if ledger.exists() else {}
    version = fingerprint(nbformat.read(released, as_version=4))
    history = data.setdefault(assignment, [])
    if history and history[-1] == version:
        return False
    history.append(version)
    ledger.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return True
