"""The real `python -m autograder grade` on 06_normalization and 07_residual.

One batch holds, for both assignments, the reference solution (full marks), the
blank release (zero) and students with the typical mistakes of each chapter;
each mistake must lose the points of the test cell whose feedback names it.
"""
import pytest

import gradebatch

N6, N7 = "06_normalization", "07_residual"
FULL = {
    N6: {"test_layer_norm_hand": 2, "test_layer_norm_matches_builtin": 2, "test_batch_norm_training": 2,
         "test_batch_norm_running_stats": 2, "test_batch_norm_eval": 2, "test_layer_norm_module": 2},
    N7: {"test_zero_pad_shortcut": 2, "test_basic_block_layout": 2, "test_basic_block_identity": 2,
         "test_basic_block_downsample": 2, "test_sublayer_connection": 3},
}

UPDATE_MEAN = "running_mean.mul_(1 - momentum).add_(momentum * mean)"
UPDATE_VAR = "running_var.mul_(1 - momentum).add_(momentum * var * n / (n - 1))"
FIRST = "identity = x\n        out = self.relu(self.bn1(self.conv1(x)))"

# student -> {assignment: (edits to solution cells, [(failing test cell, phrase its feedback shows)])}
MISTAKES = {
    "m_a": {
        N6: ({"layer_norm": [("unbiased=False", "unbiased=True")],
              "batch_norm": [(UPDATE_MEAN, "running_mean = (1 - momentum) * running_mean + momentum * mean"),
                             (UPDATE_VAR, "running_var = (1 - momentum) * running_var + momentum * var * n / (n - 1)")]},
             [("test_layer_norm_hand", "you used the unbiased variance"),
              ("test_batch_norm_running_stats", "not updated in place")]),
        N7: ({"BasicBlock": [("out = self.bn2(self.conv2(out))", "out = self.relu(self.bn2(self.conv2(out)))"),
                             ("return self.relu(out)", "return out")]},
             [("test_basic_block_identity", "the ReLU came before the addition"),
              ("test_basic_block_downsample", "with a zero residual branch")]),
    },
    "m_b": {
        N6: ({"layer_norm": [("torch.sqrt(var + eps)", "(torch.sqrt(var) + eps)")],
              "batch_norm": [(UPDATE_VAR, "running_var.mul_(1 - momentum).add_(momentum * var)")]},
             [("test_layer_norm_hand", "eps is added outside the square root"),
              ("test_batch_norm_running_stats", "updated with the biased batch variance")]),
        N7: ({"BasicBlock": [("if stride != 1 or in_channels != out_channels:", "if False:")]},
             [("test_basic_block_layout", "a missing downsample"),
              ("test_basic_block_downsample", "missing downsample")]),
    },
    "m_c": {
        N6: ({"layer_norm": [("mean = x.mean(dim=-1", "mean = x.mean(dim=0"),
                             ("var = x.var(dim=-1", "var = x.var(dim=0")],
              "batch_norm": [("mean, var = running_mean, running_var",
                              "mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)")]},
             [("test_layer_norm_matches_builtin", "not over the batch axis (dim=0)"),
              ("test_batch_norm_eval", "normalised with the batch's own statistics")]),
        N7: ({"BasicBlock": [(FIRST, "x = self.relu(self.bn1(self.conv1(x)))\n        identity = x\n        out = x")],
              "SublayerConnection": [("return self.norm(x + self.dropout(sublayer(x)))",
                                      "return x + self.dropout(sublayer(self.norm(x)))")]},
             [("test_basic_block_identity", "the shortcut is the block's input x"),
              ("test_basic_block_downsample", "the shortcut applied to the wrong tensor"),
              ("test_sublayer_connection", "this is pre-LN")]),
    },
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    return gradebatch.grade_class(tmp_path_factory.mktemp("class"), tmp_path_factory.mktemp("out"),
                                  [N6, N7], MISTAKES)


@pytest.mark.parametrize("assignment", [N6, N7])
def test_solution_scores_full_marks_and_release_zero(graded, assignment):
    gradebatch.assert_solution_full_and_blank_zero(graded, assignment, FULL[assignment])


CASES = gradebatch.mistake_cases(MISTAKES)


@pytest.mark.parametrize("student, assignment, cell, phrase", CASES, ids=[f"{s}-{a}-{c}" for s, a, c, _ in CASES])
def test_typical_mistake_loses_points_with_a_message_naming_it(graded, student, assignment, cell, phrase):
    gradebatch.assert_mistake_named(graded, student, assignment, cell, phrase, statuses=("failed", "error"))


def test_mistakes_keep_the_points_of_unrelated_cells(graded):
    detail = gradebatch.detail(graded)
    assert detail[("m_a", N6)]["test_batch_norm_eval"] == (2.0, "passed")
    assert detail[("m_b", N6)]["test_batch_norm_training"] == (2.0, "passed")
    assert detail[("m_c", N6)]["test_batch_norm_running_stats"] == (2.0, "passed")
    assert detail[("m_a", N7)]["test_sublayer_connection"] == (3.0, "passed")
    assert detail[("m_b", N7)]["test_basic_block_identity"] == (2.0, "passed")
    assert detail[("m_c", N7)]["test_zero_pad_shortcut"] == (2.0, "passed")


def test_feedback_never_shows_hidden_test_code(graded):
    gradebatch.assert_no_hidden_code(graded, pages=10)
