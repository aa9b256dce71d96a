"""exercises/ is what nbgrader generates from solutions/, and no answer leaks."""
import json

import nbformat
import pytest

from autograder.course import EXERCISES, NOTEBOOKS, SOLUTIONS, available_assignments
from autograder import releases
from autograder.release import release
from autograder.verify import hidden_checks, plain_tests

ASSIGNMENTS = available_assignments()


def _cells(path):
    nb = json.loads(path.read_text())
    return [(c["cell_type"], c["source"], c.get("metadata", {}).get("nbgrader")) for c in nb["cells"]]


def test_every_listed_assignment_has_a_solution():
    assert "03_scaled_attention" in ASSIGNMENTS


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    release(ASSIGNMENTS, release_dir=out)
    return out


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_exercises_are_in_sync_with_solutions(regenerated, assignment):
    name = f"{NOTEBOOKS[assignment]}.ipynb"
    committed = EXERCISES / assignment / name
    assert committed.exists(), f"{committed} missing: run make release"
    assert _cells(regenerated / assignment / name) == _cells(committed), \
        f"{committed} is stale: run make release"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_committed_release_is_recorded_in_the_ledger(assignment):
    """autograder/releases.json ends with what exercises/ holds (make release records it)."""
    committed = nbformat.read(EXERCISES / assignment / f"{NOTEBOOKS[assignment]}.ipynb", as_version=4)
    assert releases.versions(assignment)[-1] == releases.fingerprint(committed), "run make release"


def test_release_records_a_new_version_once(tmp_path):
    ledger, nb = tmp_path / "releases.json", EXERCISES / "01_tensors" / "tensors.ipynb"
    assert releases.record("01_tensors", nb, ledger) and not releases.record("01_tensors", nb, ledger)
    changed = nbformat.read(nb, as_version=4)
    test = next(c for c in changed.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code")
    test.source += "\nassert True  # a fixed message"
    nbformat.write(changed, tmp_path / "tensors.ipynb")
    assert releases.record("01_tensors", tmp_path / "tensors.ipynb", ledger)
    first, second = releases.versions("01_tensors", ledger)
    assert first["cells"] == second["cells"] and first["tests"] != second["tests"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_notebooks_carry_no_outputs(assignment):
    nb = nbformat.read(SOLUTIONS / assignment / f"{NOTEBOOKS[assignment]}.ipynb", as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_released_notebooks_hold_no_answers_or_hidden_tests(assignment):
    text = (EXERCISES / assignment / f"{NOTEBOOKS[assignment]}.ipynb").read_text()
    for secret in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "autograder.checks"):
        assert secret not in text
    assert "raise NotImplementedError()" in text


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_test_cell_has_a_trusted_check(assignment):
    source = SOLUTIONS / assignment / f"{NOTEBOOKS[assignment]}.ipynb"
    calls = hidden_checks(source)
    assert calls and all(calls.values())
    assert plain_tests(source) == []
