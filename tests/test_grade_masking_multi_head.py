"""The real `python -m autograder grade` on 04_masking and 05_multi_head.

One batch holds, for both assignments, the reference solution (full marks), the
blank release (zero) and students with typical mistakes; each mistake must lose
the points of the test cell whose feedback names it.
"""
import pytest

import gradebatch

M4, M5 = "04_masking", "05_multi_head"
FULL = {
    M4: {"test_causal_mask": 2, "test_padding_mask": 1, "test_masked_softmax": 2,
         "test_masked_softmax_fully_masked": 1, "test_sdpa_masked": 2, "test_causal_attention": 2,
         "test_causal_attention_no_future": 1, "test_causal_attention_dropout": 1},
    M5: {"test_split_heads": 2, "test_merge_heads": 1, "test_mha_shapes": 1,
         "test_mha_matches_builtin": 3, "test_mha_masks": 3},
}

TRIL = "torch.tril(torch.ones(T, T, dtype=torch.bool))"
NEG_INF = 'scores = scores.masked_fill(~mask, float("-inf"))'
NAN_FIX = "return weights.masked_fill(~mask, 0.0)  # fully masked rows: NaN -> 0"

# student -> {assignment: (edits to solution cells, [(failing test cell, phrase its feedback shows)])}
MISTAKES = {
    "m_a": {
        M4: ({"causal_mask": [(TRIL, "torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)")],
              "masked_softmax": [(NAN_FIX, "return weights")]},
             [("test_causal_mask", "inverted mask polarity"),
              ("test_masked_softmax_fully_masked", "a fully masked row gives NaN")]),
        M5: ({"split_heads": [("x.view(B, T, num_heads, d_model // num_heads).transpose(1, 2)",
                               "x.view(B, num_heads, T, d_model // num_heads)")]},
             [("test_split_heads", "the heads were split with view alone")]),
    },
    "m_b": {
        M4: ({"masked_softmax": [(NEG_INF, "scores = scores.masked_fill(~mask, 0.0)"), (NAN_FIX, "return weights")],
              "CausalAttention": [("weights = self.dropout(weights)",
                                   "weights = torch.nn.functional.dropout(weights, self.dropout.p)")]},
             [("test_masked_softmax", "filled with 0 instead of -inf"),
              ("test_causal_attention_dropout", "dropout is active in eval mode")]),
        M5: ({"MultiHeadAttention": [("/ math.sqrt(self.d_k)", "/ math.sqrt(self.d_model)")]},
             [("test_mha_matches_builtin", "not by sqrt(d_model)")]),
    },
    "m_c": {
        M4: ({"causal_mask": [(TRIL, "~torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=0)")],
              "masked_softmax": [(NEG_INF, "pass"), (NAN_FIX, "return weights * mask")]},
             [("test_causal_mask", "a token cannot see itself"),
              ("test_masked_softmax", "applied after the softmax without renormalising")]),
        M5: ({"merge_heads": [("x.transpose(1, 2).reshape(B, T, h * d_head)", "x.reshape(B, T, h * d_head)")],
              "MultiHeadAttention": [("return self.W_o(context), weights", "return context, weights")]},
             [("test_merge_heads", "the heads were merged without transpose"),
              ("test_mha_matches_builtin", "the output goes through W_o")]),
    },
    "m_d": {
        M5: ({"MultiHeadAttention": [("mask = mask.unsqueeze(1)", "mask = mask")]},
             [("test_mha_masks", "the mask is not broadcast over the heads")]),
    },
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    return gradebatch.grade_class(tmp_path_factory.mktemp("class"), tmp_path_factory.mktemp("out"),
                                  [M4, M5], MISTAKES)


@pytest.mark.parametrize("assignment", [M4, M5])
def test_solution_scores_full_marks_and_release_zero(graded, assignment):
    gradebatch.assert_solution_full_and_blank_zero(graded, assignment, FULL[assignment])


CASES = gradebatch.mistake_cases(MISTAKES)


@pytest.mark.parametrize("student, assignment, cell, phrase", CASES, ids=[f"{s}-{a}-{c}" for s, a, c, _ in CASES])
def test_typical_mistake_loses_points_with_a_message_naming_it(graded, student, assignment, cell, phrase):
    gradebatch.assert_mistake_named(graded, student, assignment, cell, phrase, statuses=("failed",))


def test_mistakes_keep_the_points_of_unrelated_cells(graded):
    detail = gradebatch.detail(graded)
    assert detail[("m_a", M4)]["test_padding_mask"] == (1.0, "passed")
    assert detail[("m_b", M4)]["test_causal_mask"] == (2.0, "passed")
    assert detail[("m_d", M5)]["test_mha_matches_builtin"] == (3.0, "passed")
    assert detail[("m_d", M5)]["test_split_heads"] == (2.0, "passed")


def test_feedback_never_shows_hidden_test_code(graded):
    gradebatch.assert_no_hidden_code(graded, pages=12)  # m_d submitted 05 only; its missing 04 gets a page too
