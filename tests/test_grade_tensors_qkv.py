"""The real `python -m autograder grade` on 01_tensors and 02_qkv: the solution
scores full marks, the blank release zero, and each typical mistake loses the
points of the test cell whose feedback names it. One batch for both assignments."""
import csv

import pytest

from conftest import autograder_cli
from submissions import learner_notebook, write_submission

T, Q = "01_tensors", "02_qkv"
NOTEBOOK = {T: "tensors", Q: "qkv"}

# student -> (assignment, edits to solution cells, failing test cell, phrase its feedback must show)
MISTAKES = {
    "m_l2_wrong_dim": (T, {"l2_normalize": [("dim=dim, keepdim", "dim=0, keepdim")]},
                       "test_l2_normalize", "wrong dimension"),
    "m_l2_missing_eps": (T, {"l2_normalize": [("norm.clamp_min(eps)", "norm")]},
                         "test_l2_normalize_zero", "missing eps"),
    "m_cosine_one_side": (T, {"cosine_similarity_matrix": [("b_hat.transpose", "b.transpose")]},
                          "test_cosine_hand", "cosine without normalising one side"),
    "m_matmul_builtin": (T, {"broadcast_matmul": [("(a.unsqueeze(-1) * b.unsqueeze(-3)).sum(dim=-2)", "a @ b")]},
                         "test_broadcast_matmul_no_builtin", "must not"),
    "m_transposed_projections": (Q, {"project_qkv": [("x @ W_query, x @ W_key, x @ W_value",
                                                      "x @ W_query.T, x @ W_key.T, x @ W_value.T")]},
                                 "test_project_qkv", "Transposed projections (W.T)"),
    "m_scores_swapped": (Q, {"attention_scores": [("queries @ keys.transpose(-2, -1)",
                                                   "keys @ queries.transpose(-2, -1)")]},
                         "test_attention_scores_hand", "scores with keys and queries swapped"),
    "m_soft_without_softmax": (Q, {"lookups": [("torch.softmax(scores, dim=-1)", "scores")]},
                               "test_soft_lookup_hand", "soft lookup without softmax"),
}
FULL = {
    T: {"test_l2_normalize": 2, "test_l2_normalize_zero": 1, "test_cosine_hand": 1,
        "test_cosine_matches_builtin": 2, "test_broadcast_matmul": 2, "test_broadcast_matmul_no_builtin": 2},
    Q: {"test_project_qkv": 2, "test_attention_scores_hand": 1, "test_attention_scores_batched": 2,
        "test_soft_lookup_hand": 1, "test_soft_lookup": 2, "test_hard_lookup": 2},
}


def _detail(out):
    table = {}
    with open(out / "grades_detail.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            table.setdefault((r["student_id"], r["assignment"]), {})[r["grade_id"]] = (float(r["score"]), r["status"])
    return table


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    for a in (T, Q):
        write_submission(root, "z_solution", a, learner_notebook(a))
        write_submission(root, "y_blank_release", a, learner_notebook(a, answered=False))
    for student, (a, edits, _, _) in MISTAKES.items():
        write_submission(root, student, a, learner_notebook(a, edits))
    out = tmp_path_factory.mktemp("out")
    autograder_cli("grade", str(root), "--out", str(out), "--assignment", T, "--assignment", Q, "--workers", "2")
    return out


@pytest.mark.parametrize("assignment", [T, Q])
def test_solution_full_marks_and_blank_release_zero(graded, assignment):
    detail = _detail(graded)
    assert {g: s for g, (s, _) in detail[("z_solution", assignment)].items()} == FULL[assignment]
    assert all(st == "passed" for _, st in detail[("z_solution", assignment)].values())
    assert sum(s for s, _ in detail[("y_blank_release", assignment)].values()) == 0
    with open(graded / "grades.csv", newline="") as fh:
        rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(fh)}
    assert float(rows[("z_solution", assignment)]["score"]) == sum(FULL[assignment].values()) == 10


@pytest.mark.parametrize("student", sorted(MISTAKES))
def test_typical_mistake_loses_points_with_a_message_naming_it(graded, student):
    assignment, _, cell, phrase = MISTAKES[student]
    scores = _detail(graded)[(student, assignment)]
    assert scores[cell] == (0.0, "failed"), scores
    assert sum(s for s, _ in scores.values()) < sum(FULL[assignment].values())
    feedback = (graded / "feedback" / student / assignment / f"{NOTEBOOK[assignment]}.html").read_text()
    assert phrase in feedback.replace("&#39;", "'").replace("&quot;", '"')
