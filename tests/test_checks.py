"""The check library judges in-process targets: right code passes, each known
mistake fails with a message that names it."""
import math

import pytest
import torch
from torch import nn

from autograder.checks import run
from autograder.checks.core import judge, make_inputs, run_case, trusted_state
from autograder.learner_side.call import call_target, draw_state
from autograder.checks import scaled_attention as sa


def attention(scale=lambda d_k, d_v: math.sqrt(d_k), dim=-1, transpose_queries=False, return_scores=False):
    def sdpa(queries, keys, values):
        scores = (keys @ queries.transpose(-2, -1) if transpose_queries
                  else queries @ keys.transpose(-2, -1)) / scale(keys.shape[-1], values.shape[-1])
        weights = torch.softmax(scores, dim=dim)
        return weights @ values, scores if return_scores else weights
    return sdpa


def test_correct_attention_passes_every_check():
    for check in (sa.sdpa_matches_builtin, sa.sdpa_rows_sum_to_one, sa.sdpa_seed_oracle):
        run(check, attention())


@pytest.mark.parametrize("wrong, phrase", [
    (attention(scale=lambda d_k, d_v: 1.0), "not scaled"),
    (attention(scale=lambda d_k, d_v: d_k), "divided by d_k"),
    (attention(scale=lambda d_k, d_v: math.sqrt(d_v)), "sqrt(d_v)"),
    (attention(dim=-2), "query axis"),
    (attention(return_scores=True), "not their softmax"),
    (attention(transpose_queries=True), "wrong operand was transposed"),
])
def test_attention_mistake_is_named(wrong, phrase):
    with pytest.raises(AssertionError, match=phrase.replace("(", r"\(").replace(")", r"\)")):
        run(sa.sdpa_matches_builtin, wrong)


def test_seed_oracle_rejects_a_missing_scale():
    with pytest.raises(AssertionError, match="not scaled"):
        run(sa.sdpa_seed_oracle, attention(scale=lambda d_k, d_v: 1.0))


def test_inputs_modified_in_place_do_not_change_the_reference():
    def zeroing(queries, keys, values):
        out = attention()(queries, keys, values)
        queries.zero_()
        return out
    case = sa.sdpa_matches_builtin.cases[0]
    inputs = make_inputs(case)
    got, _ = call_target("function", zeroing, inputs, args=("queries", "keys", "values"))
    judge(sa.sdpa_matches_builtin, case, inputs, got)  # the reference uses its own copies
    with pytest.raises(AssertionError, match="modifies an input in place"):  # which the contract forbids
        run(sa.sdpa_matches_builtin, zeroing)


class V1(nn.Module):
    def __init__(self, d_in, d_out, scale_by_d_in=False):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))
        self.scale_by_d_in = scale_by_d_in

    def forward(self, x):
        q, k, v = x @ self.W_query, x @ self.W_key, x @ self.W_value
        d = x.shape[-1] if self.scale_by_d_in else k.shape[-1]
        return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1) @ v


class V2(nn.Module):
    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        return attention()(self.W_query(x), self.W_key(x), self.W_value(x))[0]


def test_modules_pass_with_the_seed_oracles():
    run(sa.self_attention_v1, V1)
    run(sa.self_attention_v2, V2)


def test_module_scaled_by_model_width_is_named():
    with pytest.raises(AssertionError, match=r"sqrt\(d_in\)"):
        run(sa.self_attention_v1, lambda d_in, d_out: V1(d_in, d_out, scale_by_d_in=True))


def test_module_with_renamed_parameters_is_reported():
    class Renamed(V2):
        def __init__(self, d_in, d_out, qkv_bias=False):
            super().__init__(d_in, d_out, qkv_bias)
            self.W_q = self.W_query
            del self.W_query

        def forward(self, x):
            return attention()(self.W_q(x), self.W_key(x), self.W_value(x))[0]
    with pytest.raises(AssertionError):
        run(sa.self_attention_v2, Renamed)


def score_std(scale=lambda d_k: math.sqrt(d_k), variance=False):
    def std(d_k, n_samples=10000, scaled=False, generator=None):
        s = (torch.randn(n_samples, d_k, generator=generator) * torch.randn(n_samples, d_k, generator=generator)).sum(-1)
        s = s / scale(d_k) if scaled else s
        return (s.var() if variance else s.std()).item()
    return std


def test_score_std_statistics():
    run(sa.score_std_statistics, score_std())
    with pytest.raises(AssertionError, match="variance"):
        run(sa.score_std_statistics, score_std(variance=True))
    with pytest.raises(AssertionError, match="not by d_k"):
        run(sa.score_std_statistics, score_std(scale=lambda d_k: d_k))


def test_module_reporting_a_forged_state_fails():
    """Zero outputs with a zero state_dict: a reference computed from the
    reported state would predict exactly those zeros."""
    class Forged(V2):
        def forward(self, x):
            return torch.zeros(*x.shape[:-1], self.W_value.out_features)

        def state_dict(self, *args, **kwargs):
            return {k: torch.zeros_like(v) for k, v in super().state_dict(*args, **kwargs).items()}
    random_cases = [c for c in sa.self_attention_v2.cases if not c.keep_init]
    assert random_cases
    for case in random_cases:
        with pytest.raises(AssertionError, match="differs from the reference"):
            run_case(sa.self_attention_v2, case, Forged)


def test_trusted_state_is_the_state_an_honest_module_ran_with():
    """Drawn in one place, recomputed in another from names and shapes alone:
    tied weights, BatchNorm's running statistics and an integer counter included."""
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(10, 4)
            self.norm = nn.BatchNorm1d(4)
            self.out_proj = nn.Linear(4, 10)
            self.out_proj.weight = self.embedding.weight
    model = Tied()
    draw_state(model, seed=7)
    reported = model.state_dict()
    assert torch.equal(reported["out_proj.weight"], reported["embedding.weight"])
    assert (reported["norm.running_var"] >= 0.5).all() and not torch.equal(reported["norm.running_mean"],
                                                                           torch.zeros(4))
    trusted = trusted_state(reported, seed=7)
    assert trusted.keys() == reported.keys()
    for key, value in reported.items():
        assert torch.equal(trusted[key], value), key
    other = trusted_state(reported, seed=8)
    assert not torch.equal(other["embedding.weight"], reported["embedding.weight"])
