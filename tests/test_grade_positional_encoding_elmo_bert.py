"""The real `python -m autograder grade` on 08_positional_encoding and 09_elmo_bert.

One batch holds, for both assignments, the reference solution (full marks), the
blank release (zero) and students with the typical mistakes of the chapters; each
mistake must lose the points of the test cell whose feedback names it.
"""
import csv

import pytest

from conftest import autograder_cli
from submissions import learner_notebook, write_submission

A8, A9 = "08_positional_encoding", "09_elmo_bert"
NB = {A8: "positional_encoding", A9: "elmo_bert"}
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


def _detail(out):
    table = {}
    with open(out / "grades_detail.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            table.setdefault((r["student_id"], r["assignment"]), {})[r["grade_id"]] = (float(r["score"]), r["status"])
    return table


def _feedback(out, student, assignment):
    text = (out / "feedback" / student / assignment / f"{NB[assignment]}.html").read_text()
    return text.replace("&#39;", "'").replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class89")
    for a in (A8, A9):
        write_submission(root, "z_solution", a, learner_notebook(a))
        write_submission(root, "y_blank_release", a, learner_notebook(a, answered=False))
    for student, by_assignment in MISTAKES.items():
        for a, (edits, _) in by_assignment.items():
            write_submission(root, student, a, learner_notebook(a, edits))
    out = tmp_path_factory.mktemp("out89")
    autograder_cli("grade", str(root), "--out", str(out), "--assignment", A8, "--assignment", A9)
    return out


@pytest.mark.parametrize("assignment", [A8, A9])
def test_solution_scores_full_marks_and_release_zero(graded, assignment):
    detail = _detail(graded)
    solution = detail[("z_solution", assignment)]
    assert {g: s for g, (s, _) in solution.items()} == FULL[assignment]
    assert all(st == "passed" for _, st in solution.values())
    assert sum(s for s, _ in detail[("y_blank_release", assignment)].values()) == 0
    with open(graded / "grades.csv", newline="") as fh:
        grades = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(fh)}
    row = grades[("z_solution", assignment)]
    assert float(row["score"]) == float(row["max_score"]) == sum(FULL[assignment].values())


CASES = [(s, a, cell, phrase) for s, by_a in MISTAKES.items() for a, (_, fails) in by_a.items()
         for cell, phrase in fails]


@pytest.mark.parametrize("student, assignment, cell, phrase", CASES,
                         ids=[f"{s}-{a}-{c}" for s, a, c, _ in CASES])
def test_typical_mistake_loses_points_with_a_message_naming_it(graded, student, assignment, cell, phrase):
    score, status = _detail(graded)[(student, assignment)][cell]
    assert score == 0 and status == "failed", (score, status)
    assert phrase in _feedback(graded, student, assignment)


def test_mistakes_keep_the_points_of_unrelated_cells(graded):
    detail = _detail(graded)
    assert detail[("m_b", A8)]["test_token_embedding"] == (2.0, "passed")
    assert detail[("m_a", A9)]["test_count_trainable"] == (1.0, "passed")
    assert detail[("m_c", A9)]["test_encoder_layer"] == (3.0, "passed")


def test_feedback_never_shows_hidden_test_code(graded):
    pages = list((graded / "feedback").rglob("*.html"))
    assert len(pages) == 10
    for page in pages:
        text = page.read_text()
        for secret in ("BEGIN HIDDEN TESTS", "autograder.checks", "run(checks."):
            assert secret not in text, (page, secret)
