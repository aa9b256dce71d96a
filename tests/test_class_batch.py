"""One class of real notebooks graded three times, as an instructor would:
every assignment's solution and the corpus of implementations taken from
public codebases (tests/corpus), graded with `--workers 2`.

* The three runs give byte-identical grades_detail.csv (statuses included):
  no intermittent `error` (the race on nbgrader's student insert is gone).
* Every correct implementation from the corpus scores full marks; every one
  that deviates from the contract loses the cell that names its cause.
* nbgrader's log of a notebook that did not run normally is kept and named.
"""
import csv
import importlib
import pkgutil

import pytest

import corpus
import gradebatch
from autograder.course import NOTEBOOKS
from autograder.report import GRADER_FAILED
from conftest import autograder_cli
from submissions import learner_notebook, write_submission

IMPLEMENTATIONS = [impl for info in pkgutil.iter_modules(corpus.__path__)
                   for impl in importlib.import_module(f"corpus.{info.name}").IMPLEMENTATIONS]
RUNS = 3


def corpus_notebook(impl):
    """The solution notebook with the implementation's cells in place of the solution's."""
    nb = learner_notebook(impl.assignment)
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in impl.cells:
            cell.source = impl.cells[grade_id]
    return nb


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    for assignment in NOTEBOOKS:
        write_submission(root, "z_solution", assignment, learner_notebook(assignment))
    for impl in IMPLEMENTATIONS:
        write_submission(root, impl.name, impl.assignment, corpus_notebook(impl))
    outs = []
    for i in range(RUNS):
        out = tmp_path_factory.mktemp(f"run{i}")
        autograder_cli("grade", str(root), "--out", str(out), "--workers", "2")
        outs.append(out)
    return root, outs


def rows(out):
    with open(out / "grades_detail.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_batch_holds_at_least_60_notebooks(runs):
    root, _ = runs
    assert len(list(root.glob("*/*/*.ipynb"))) >= 60


def test_three_runs_give_byte_identical_grades(runs):
    _, outs = runs
    first = (outs[0] / "grades_detail.csv").read_bytes()
    for out in outs[1:]:
        assert (out / "grades_detail.csv").read_bytes() == first
    assert not [r for r in rows(outs[0]) if r["review"].startswith(GRADER_FAILED)]


def test_every_solution_scores_full_marks(runs):
    _, outs = runs
    mine = [r for r in rows(outs[0]) if r["student_id"] == "z_solution"]
    assert len({r["assignment"] for r in mine}) == len(NOTEBOOKS)
    assert all(r["status"] == "passed" and r["score"] == r["max_score"] for r in mine), mine


def test_the_log_of_a_notebook_that_raised_is_kept_and_named(runs):
    """The error is on the feedback page (a trusted check's call raised) or in
    nbgrader's log (the notebook's own run raised), and the log is kept."""
    _, outs = runs
    errors = [r for r in rows(outs[0]) if r["status"] in ("error", "crashed", "timeout")]
    assert errors  # e.g. minGPT's attention takes one argument: a TypeError
    for r in errors:
        log = f"logs/{r['student_id']}/{r['assignment']}.log"
        assert log in r["review"] and (outs[0] / log).exists(), r
        page = gradebatch.feedback(outs[0], r["student_id"], r["assignment"])
        assert "Error" in page or "Error" in (outs[0] / log).read_text(), r


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_corpus_implementation(runs, impl):
    _, outs = runs
    mine = {r["grade_id"]: r for r in rows(outs[0])
            if (r["student_id"], r["assignment"]) == (impl.name, impl.assignment)}
    assert mine, impl.name
    if not impl.loses:
        wrong = {g: (r["status"], r["score"]) for g, r in mine.items() if r["score"] != r["max_score"]}
        assert not wrong, (impl.source, wrong, gradebatch.feedback(outs[0], impl.name, impl.assignment)[-3000:])
        return
    page = gradebatch.feedback(outs[0], impl.name, impl.assignment)
    for cell, phrase in impl.loses.items():
        assert float(mine[cell]["score"]) == 0, (impl.source, cell, mine[cell])
        assert phrase in page, (impl.source, cell, phrase)
