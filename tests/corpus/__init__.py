"""Implementations taken from public codebases, adapted only in names and
signatures to COURSE_SPEC.md, graded through the real `grade` command.

Each module of this package (one per assignment) lists ``IMPLEMENTATIONS``.
A correct implementation (``loses`` empty) must score full marks; one that
genuinely deviates from the contract must lose the points of the cells in
``loses``, with feedback that names the real cause.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Implementation:
    name: str                  # the student id it is graded under: c_<short name>
    assignment: str            # e.g. "05_multi_head"
    source: str                # "owner/repo, path, commit <40 hex>" (and the function or class)
    cells: dict[str, str]      # solution cell grade_id -> the whole new source of that cell
    loses: dict[str, str] = field(default_factory=dict)  # test cell grade_id -> phrase the feedback shows
    adapted: str = ""          # what was changed from the original, and why it deviates (if it does)
