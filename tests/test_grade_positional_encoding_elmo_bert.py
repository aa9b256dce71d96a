"""The real `python -m autograder grade` on 08_positional_encoding and 09_elmo_bert.

One batch holds, for both assignments, the reference solution (full marks), the
blank release (zero) and students with the typical mistakes of the chapters; each
mistake must lose the points of the test cell whose feedback names it.
"""
import pytest

import gradebatch

A8, A9 = "08_positional_encoding", "09_elmo_bert"
FULL = {
    A8: {"test_pe_basics": 2, "test_pe_values": 3, "test_positional_encoding": 3, "test_token_embedding": 2},
    A9: {"test_scalar_mix": 2, "test_mask_tokens_labels": 2, "test_mask_tokens_proportions": 2,
         "test_encoder_layer": 3, "test_encoder_layer_padding": 1, "test_freeze": 1, "test_count_trainable": 1},
}

PE = "sinusoidal_positional_encoding"
SIN_COS = "pe[:, 0::2] = torch.sin(angles)\n    pe[:, 1::2] = torch.cos(angles)"
LABELS = "labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))"

# student -> {assignment: (edits to solution cells, [(failing test cell, phrase its feedback shows)])}
MISTAKES = {
    "m_a": {
        A8: ({PE: [(SIN_COS, "pe[:, 0::2] = torch.cos(angles)\n    pe[:, 1::2] = torch.sin(angles)")],
              "PositionalEncoding": [("x + self.pe[:T]", "x + self.pe")],
              "TokenEmbedding": [(" * math.sqrt(self.d_model)", "")]},
             [("test_pe_basics", "sin and cos are swapped"),
              ("test_positional_encoding", "slice the encoding to the sequence length"),
              ("test_token_embedding", "the sqrt(d_model) scale missing")]),
        A9: ({"scalar_mix": [("torch.softmax(s, dim=0)", "s")],
              "mask_tokens": [("probs = probs.masked_fill(special_tokens_mask, 0.0)", "pass")],
              "TransformerEncoderLayer": [
                  ("x = self.norm1(x + self.dropout(attended))\n        ", ""),
                  ("attended, _ = self.self_attn(x, x, x, mask)",
                   "h = self.norm1(x)\n        attended, _ = self.self_attn(h, h, h, mask)\n"
                   "        x = x + self.dropout(attended)"),
                  ("ff = self.linear2(self.dropout(self.activation(self.linear1(x))))",
                   "ff = self.linear2(self.dropout(self.activation(self.linear1(self.norm2(x)))))"),
                  ("return self.norm2(x + self.dropout(ff))", "return x + self.dropout(ff)")]},
             [("test_scalar_mix", "the softmax is missing"),
              ("test_mask_tokens_labels", "special tokens ([CLS], [SEP]) must never be selected"),
              ("test_encoder_layer", "pre-LN")]),
    },
    "m_b": {
        A8: ({PE: [("torch.arange(0, d_model, 2, dtype=torch.float32)",
                    "torch.arange(d_model // 2, dtype=torch.float32)")]},
             [("test_pe_values", "the exponent is i/d instead of 2i/d")]),
        A9: ({"mask_tokens": [(LABELS, "labels = input_ids.clone()")],
              "TransformerEncoderLayer": [("padding_mask.unsqueeze(1)", "(~padding_mask).unsqueeze(1)")],
              "freeze_and_count": [("p.requires_grad_(False)\n    return module", "pass\n    return module.eval()")]},
             [("test_mask_tokens_labels", "labels are -100 outside the selected positions"),
              ("test_encoder_layer_padding", "the padding mask may be inverted"),
              ("test_freeze", "every parameter of the module must be frozen")]),
    },
    "m_c": {
        A8: ({PE: [(SIN_COS, "pe = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)")]},
             [("test_pe_basics", "concatenated as two halves")]),
        A9: ({"mask_tokens": [("torch.full(input_ids.shape, 0.5)", "torch.full(input_ids.shape, 0.1)"),
                              ("corrupted = input_ids.clone()", "corrupted = input_ids")]},
             [("test_mask_tokens_labels", "input_ids was modified in place"),
              ("test_mask_tokens_proportions", "the 80/10/10 proportions are wrong")]),
    },
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    return gradebatch.grade_class(tmp_path_factory.mktemp("class"), tmp_path_factory.mktemp("out"),
                                  [A8, A9], MISTAKES)


@pytest.mark.parametrize("assignment", [A8, A9])
def test_solution_scores_full_marks_and_release_zero(graded, assignment):
    gradebatch.assert_solution_full_and_blank_zero(graded, assignment, FULL[assignment])


CASES = gradebatch.mistake_cases(MISTAKES)


@pytest.mark.parametrize("student, assignment, cell, phrase", CASES, ids=[f"{s}-{a}-{c}" for s, a, c, _ in CASES])
def test_typical_mistake_loses_points_with_a_message_naming_it(graded, student, assignment, cell, phrase):
    gradebatch.assert_mistake_named(graded, student, assignment, cell, phrase, statuses=("failed",))


def test_mistakes_keep_the_points_of_unrelated_cells(graded):
    detail = gradebatch.detail(graded)
    assert detail[("m_b", A8)]["test_token_embedding"] == (2.0, "passed")
    assert detail[("m_a", A9)]["test_count_trainable"] == (1.0, "passed")
    assert detail[("m_c", A9)]["test_encoder_layer"] == (3.0, "passed")


def test_feedback_never_shows_hidden_test_code(graded):
    gradebatch.assert_no_hidden_code(graded, pages=10)
