"""The real `python -m autograder grade` on 10_transformer.

One batch holds the reference solution (full marks), the blank release (zero)
and students with typical mistakes, two or three per notebook on different
cells; each mistake must lose the points of the test cell whose feedback names it.
"""
import pytest

import gradebatch

A = "10_transformer"
FULL = {"test_decoder_shapes": 1, "test_decoder_matches_builtin": 3, "test_decoder_cross_attention": 2,
        "test_decoder_causal": 2, "test_transformer_tying": 2, "test_transformer_forward": 2,
        "test_transformer_causal": 1}

LAYER, MODEL = "TransformerDecoderLayer", "Transformer"
SELF = "self.self_attn(x, x, x, tgt_mask)[0]"
CROSS = "self.multihead_attn(x, memory, memory, memory_mask)[0]"
TIE = "self.out_proj.weight = self.embedding.weight"
DECODE = "x = layer(x, memory, tgt_mask=causal, memory_mask=memory_mask)"

# student -> (edits to solution cells, [(failing test cell, phrase its feedback shows)])
BY_STUDENT = {
    "m_a": ({LAYER: [(CROSS, "self.multihead_attn(x, x, x, memory_mask)[0]")],
             MODEL: [(TIE, "self.out_proj.weight = nn.Parameter(self.embedding.weight.detach().clone())")]},
            [("test_decoder_cross_attention", "not from the decoder's own state"),
             ("test_transformer_tying", "a copy of the embedding weights, not the same tensor")]),
    "m_b": ({LAYER: [(SELF, "self.self_attn(x, x, x)[0]")], MODEL: [(TIE, "pass")]},
            [("test_decoder_causal", "missing causal mask"),
             ("test_transformer_tying", "is not tied to the embedding")]),
    "m_c": ({LAYER: [("x = tgt\n", "x = tgt\n        tgt_mask = None if tgt_mask is None else ~tgt_mask\n")],
             MODEL: [(DECODE, "x = layer(x, memory, memory_mask=memory_mask)")]},
            [("test_decoder_causal", "the mask is inverted"),
             ("test_transformer_causal", "the decoder has no causal mask")]),
    "m_d": ({LAYER: [("self.norm1(x + self.dropout(", "self.norm1(self.dropout(")],
             MODEL: [("nn.Linear(d_model, vocab_size, bias=False)", "nn.Linear(d_model, vocab_size)")]},
            [("test_decoder_matches_builtin", "without the residual"),
             ("test_transformer_tying", "nn.Linear(d_model, vocab_size, bias=False)")]),
    "m_e": ({MODEL: [(DECODE, "x = layer(x, memory, tgt_mask=causal, memory_mask=None)")]},
            [("test_transformer_forward", "the cross-attention ignores src_padding_mask")]),
}

MISTAKES = {s: {A: entry} for s, entry in BY_STUDENT.items()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    return gradebatch.grade_class(tmp_path_factory.mktemp("class10"), tmp_path_factory.mktemp("out10"), [A], MISTAKES)


def test_solution_scores_full_marks_and_release_zero(graded):
    gradebatch.assert_solution_full_and_blank_zero(graded, A, FULL)


CASES = gradebatch.mistake_cases(MISTAKES)


@pytest.mark.parametrize("student, assignment, cell, phrase", CASES, ids=[f"{s}-{c}" for s, _, c, _ in CASES])
def test_typical_mistake_loses_points_with_a_message_naming_it(graded, student, assignment, cell, phrase):
    gradebatch.assert_mistake_named(graded, student, assignment, cell, phrase)


def test_mistakes_keep_the_points_of_unrelated_cells(graded):
    detail = {s: cells for (s, _), cells in gradebatch.detail(graded).items()}
    # a layer that ignores tgt_mask still matches PyTorch when no mask is given
    assert detail["m_b"]["test_decoder_matches_builtin"] == (3.0, "passed")
    assert detail["m_b"]["test_decoder_cross_attention"] == (2.0, "passed")
    # a copied output matrix computes the right logits before training
    assert detail["m_a"]["test_decoder_shapes"] == (1.0, "passed")
    # a decoder that ignores the source padding loses only the forward cell
    assert {g: s for g, (s, _) in detail["m_e"].items()} == {**FULL, "test_transformer_forward": 0}


def test_feedback_never_shows_hidden_test_code(graded):
    gradebatch.assert_no_hidden_code(graded, pages=2 + len(MISTAKES))
