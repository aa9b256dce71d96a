"""The real `python -m autograder grade` on 01_tensors and 02_qkv: the solution
scores full marks, the blank release zero, and each typical mistake loses the
points of the test cell whose feedback names it. One batch for both assignments."""
import pytest

import gradebatch

T, Q = "01_tensors", "02_qkv"

# student -> (assignment, edits to solution cells, failing test cell, phrase its feedback must show)
BY_STUDENT = {
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

MISTAKES = {s: {a: (edits, [(cell, phrase)])} for s, (a, edits, cell, phrase) in BY_STUDENT.items()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    return gradebatch.grade_class(tmp_path_factory.mktemp("class"), tmp_path_factory.mktemp("out"), [T, Q], MISTAKES)


@pytest.mark.parametrize("assignment", [T, Q])
def test_solution_full_marks_and_blank_release_zero(graded, assignment):
    gradebatch.assert_solution_full_and_blank_zero(graded, assignment, FULL[assignment])


@pytest.mark.parametrize("student, assignment, cell, phrase", gradebatch.mistake_cases(MISTAKES))
def test_typical_mistake_loses_points_with_a_message_naming_it(graded, student, assignment, cell, phrase):
    gradebatch.assert_mistake_named(graded, student, assignment, cell, phrase)
    scores = gradebatch.detail(graded)[(student, assignment)]
    assert sum(s for s, _ in scores.values()) < sum(FULL[assignment].values())


def test_feedback_never_shows_hidden_test_code(graded):
    gradebatch.assert_no_hidden_code(graded, pages=2 * 2 + 2 * len(MISTAKES))
