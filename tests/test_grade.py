"""The real `python -m autograder grade` on a class of real notebooks.

One batch holds broken and tampered submissions first, then typical mistakes,
the blank release and the reference solution, so the test also shows that a
bad submission never stops the students graded after it.
"""
import csv
import zipfile
import json

import shutil

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.course import gradebook_url
from autograder.grade import GradebookMismatch, check_gradebook

from submissions import learner_notebook, write_submission
import gradebatch
from conftest import autograder_cli

A = "03_scaled_attention"
SDPA = "scaled_dot_product_attention"
SCALE = "/ math.sqrt(d_k)"

# student -> (edits to solution cells, failing test cell, phrase its feedback must show)
MISTAKES = {
    "m_no_scale": ({SDPA: [(SCALE, "")]}, "test_sdpa_hand_example", "the scores were not divided by sqrt(d_k)"),
    "m_scale_by_d_k": ({SDPA: [(SCALE, "/ d_k")]}, "test_sdpa_hand_example", "divided by d_k = 2, not by sqrt(d_k)"),
    "m_softmax_over_queries": ({SDPA: [("dim=-1", "dim=-2")]}, "test_sdpa_shapes", "over the keys (dim=-1)"),
    "m_scale_by_d_model": (
        {"SelfAttention_v2": [("context, _ = scaled_dot_product_attention(queries, keys, values)",
                               "weights = torch.softmax(queries @ keys.transpose(-2, -1) "
                               "/ math.sqrt(x.shape[-1]), dim=-1)\n        context = weights @ values")]},
        "test_self_attention_v2", "not sqrt(d_in)"),
    "m_unnormalised_weights": ({SDPA: [("return weights @ values, weights", "return weights @ values, scores")]},
                               "test_sdpa_shapes", "not the scores themselves"),
    "m_transposed_operand": ({SDPA: [("queries @ keys.transpose(-2, -1)", "keys @ queries.transpose(-2, -1)")]},
                             "test_sdpa_shapes", "the wrong operand was transposed"),
    "m_scale_by_d_v": ({SDPA: [("d_k = keys.shape[-1]", "d_k = values.shape[-1]")]},
                       "test_sdpa_matches_builtin", "sqrt(d_v) = sqrt(5), the width of the values"),
}
FULL = {"test_sdpa_shapes": 1, "test_sdpa_hand_example": 1, "test_sdpa_matches_builtin": 3,
        "test_self_attention_v1": 2, "test_self_attention_v2": 2, "test_score_std": 2}


def _class(root):
    nb = learner_notebook(A)
    dup = nbformat.from_dict(json.loads(json.dumps(nb)))
    i = next(i for i, c in enumerate(dup.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "test_sdpa_shapes")
    dup.cells.insert(i, nbformat.from_dict(json.loads(json.dumps(dup.cells[i]))))
    dup.cells[i].source = "pass  # a copy with the same grade_id"
    dup.cells[i].id = "duplicate-copy"
    write_submission(root, "a_duplicate_cell", A, dup)
    write_submission(root, "b_kernel_dies", A, learner_notebook(A, {SDPA: [("d_k = keys", "import os; os._exit(1)\n    d_k = keys")]}))
    deleted = learner_notebook(A)
    deleted.cells = [c for c in deleted.cells
                     if c.metadata.get("nbgrader", {}).get("grade_id") != "test_sdpa_matches_builtin"]
    write_submission(root, "c_deleted_test", A, deleted)
    write_submission(root, "d_warns", A, learner_notebook(A, {SDPA: [("d_k = keys", "import warnings; warnings.warn('a harmless warning')\n    d_k = keys")]}))
    (root / "e_not_json" / A).mkdir(parents=True)
    (root / "e_not_json" / A / "scaled_attention.ipynb").write_text('{"cells": [', encoding="utf-8")
    write_submission(root, "f_wrong_name", A, nb).rename(root / "f_wrong_name" / A / "Untitled.ipynb")
    (root / "g_empty_folder").mkdir()
    for student, (edits, _, _) in MISTAKES.items():
        write_submission(root, student, A, learner_notebook(A, edits))
    write_submission(root, "y_blank_release", A, learner_notebook(A, answered=False))
    write_submission(root, "z_solution", A, learner_notebook(A))


def _detail(out):
    with open(out / "grades_detail.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    table = {}
    for r in rows:
        table.setdefault(r["student_id"], {})[r["grade_id"]] = (float(r["score"]), r["status"])
    return table


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    _class(root)
    before = gradebatch.digest(root)
    out = tmp_path_factory.mktemp("out")
    result = autograder_cli("grade", str(root), "--out", str(out))
    return root, before, out, result


def test_solution_scores_full_marks_and_release_zero(graded):
    _, _, out, _ = graded
    detail = _detail(out)
    assert {g: s for g, (s, _) in detail["z_solution"].items()} == FULL
    assert all(st == "passed" for _, st in detail["z_solution"].values())
    assert sum(s for s, _ in detail["y_blank_release"].values()) == 0
    with open(out / "grades.csv", newline="") as fh:
        grades = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert float(grades["z_solution"]["score"]) == float(grades["z_solution"]["max_score"]) == 11
    assert float(grades["y_blank_release"]["score"]) == 0
    assert list(grades["z_solution"]) == ["assignment", "duedate", "timestamp", "student_id", "last_name",
                                          "first_name", "email", "raw_score", "late_submission_penalty",
                                          "score", "max_score"]


@pytest.mark.parametrize("student", sorted(MISTAKES))
def test_typical_mistake_loses_points_with_a_message_naming_it(graded, student):
    _, _, out, _ = graded
    _, cell, phrase = MISTAKES[student]
    score, status = _detail(out)[student][cell]
    assert score == 0 and status == "failed", (score, status)
    assert phrase in gradebatch.feedback(out, student, A)


def test_bad_submissions_get_statuses_and_the_batch_goes_on(graded):
    _, _, out, result = graded
    detail = _detail(out)
    expect = {"b_kernel_dies": "crashed", "e_not_json": "error", "f_wrong_name": "missing",
              "g_empty_folder": "missing"}
    for student, status in expect.items():
        assert {st for _, st in detail[student].values()} == {status}, (student, detail[student])
        assert student in result.stdout
        assert (out / "feedback" / student / A / "scaled_attention.html").exists()
    assert "Untitled.ipynb" in result.stdout


def test_duplicate_grade_id_does_not_abort_the_batch(graded):
    _, _, out, _ = graded
    detail = _detail(out)
    assert detail["a_duplicate_cell"]["test_sdpa_shapes"] == (1.0, "tampered")
    assert detail["a_duplicate_cell"]["test_score_std"] == (2.0, "passed")


def test_deleted_test_cell_is_restored_and_graded(graded):
    _, _, out, _ = graded
    assert _detail(out)["c_deleted_test"]["test_sdpa_matches_builtin"] == (3.0, "tampered")


def test_warning_on_stderr_costs_no_points(graded):
    _, _, out, _ = graded
    assert {g: s for g, (s, _) in _detail(out)["d_warns"].items()} == FULL


def test_submitted_files_are_never_changed(graded):
    root, before, _, _ = graded
    assert gradebatch.digest(root) == before


def test_feedback_never_shows_hidden_test_code(graded):
    _, _, out, _ = graded
    pages = list((out / "feedback").rglob("*.html"))
    assert len(pages) >= len(MISTAKES) + 9
    for page in pages:
        text = page.read_text()
        assert not [secret for secret in gradebatch.HIDDEN_CODE if secret in text], page


def test_export_refuses_a_gradebook_that_disagrees_with_grades_detail(graded, tmp_path):
    """A score written into the gradebook by anything but our grader (here by
    hand) is caught before nbgrader's export reads it."""
    _, _, out, _ = graded
    copy = tmp_path / "out"
    copy.mkdir()
    for name in ("gradebook.db", "grades_detail.csv", "grades.csv"):
        shutil.copyfile(out / name, copy / name)
    check_gradebook(copy)  # as graded: they agree
    with Gradebook(gradebook_url(copy)) as gb:
        gb.find_grade("test_sdpa_hand_example", "scaled_attention", A, "m_no_scale").auto_score = 1.0
        gb.db.commit()
    with pytest.raises(GradebookMismatch, match=r"'m_no_scale'/03_scaled_attention/test_sdpa_hand_example: 1 in "
                                                r"the gradebook, 0 in grades_detail.csv"):
        check_gradebook(copy)
    assert not (copy / "grades.csv").exists()


def test_regrading_one_student_keeps_the_class_and_lists_the_roster(graded, tmp_path):
    """--student regrades one learner; both CSV files still cover the whole
    gradebook, and a student on the roster who submitted nothing is listed
    with 0 (as `nbgrader export` lists them)."""
    root, _, out, _ = graded
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    with Gradebook(gradebook_url(copy)) as gb:
        gb.add_student("r_roster_only", email="r@example.org")
    before = _detail(copy)
    result = autograder_cli("grade", str(root), "--out", str(copy), "--student", "m_no_scale")
    assert "graded 1 submission(s)" in result.stdout
    after = _detail(copy)
    assert set(after["r_roster_only"]) == set(FULL)
    assert {st for _, st in after["r_roster_only"].values()} == {"missing"}
    assert after == {**before, "r_roster_only": after["r_roster_only"]}
    with open(copy / "grades.csv", newline="") as fh:
        exported = {r["student_id"]: float(r["score"]) for r in csv.DictReader(fh)}
    assert set(exported) == set(after) and exported["r_roster_only"] == 0
    assert exported["z_solution"] == 11


def test_regrade_in_parallel_gives_the_same_results(graded, tmp_path):
    root, _, out, _ = graded
    first = _detail(out)
    autograder_cli("grade", str(root), "--out", str(out), "--workers", "2")
    assert _detail(out) == first


def test_usage_errors_exit_non_zero(tmp_path):
    assert autograder_cli("grade", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), check=False).returncode == 2
    assert autograder_cli("grade", "--assignment", "99_nope", "--out", str(tmp_path / "o"), check=False).returncode == 2
    (tmp_path / "empty" / "notes.txt").parent.mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("a class folder with no student in it")
    result = autograder_cli("grade", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), check=False)
    assert result.returncode == 2 and "nothing to grade in" in result.stderr and "notes.txt" in result.stderr


def test_a_zip_of_the_submitted_folder_is_graded(tmp_path):
    folder = tmp_path / "submitted"
    write_submission(folder, "alice", A, learner_notebook(A))
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in folder.rglob("*"):
            zf.write(path, path.relative_to(tmp_path))  # entries start with submitted/
    before = archive.read_bytes()
    autograder_cli("grade", str(archive), "--out", str(tmp_path / "out"))
    assert archive.read_bytes() == before
    assert {g: s for g, (s, _) in _detail(tmp_path / "out")["alice"].items()} == FULL
    assert not list((tmp_path / "out").glob("unzipped-*"))  # the unpacked copy is removed


def test_a_zip_entry_outside_its_folder_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escaped.txt", "x")
    result = autograder_cli("grade", str(archive), "--out", str(tmp_path / "out"), check=False)
    assert result.returncode == 2 and "outside its folder" in result.stderr
    assert not (tmp_path / "escaped.txt").exists()
