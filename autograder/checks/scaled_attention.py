"""Checks for assignment 03_scaled_attention (COURSE_SPEC.md).

References come from PyTorch: ``F.scaled_dot_product_attention`` for the
context vectors and ``torch.softmax`` of QK^T / sqrt(d_k) for the weights
(Vaswani et al. 2017, eq. 1); the seed oracles are the numbers printed in
COURSE_SPEC.md (Raschka 2024, ch. 3).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .core import Case, Check, Mistake, child_generator

# "Your journey starts with one step": 3-d embeddings (Raschka 2024, ch. 3).
SEED_INPUTS = torch.tensor(
    [[0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64],
     [0.22, 0.58, 0.33], [0.77, 0.25, 0.10], [0.05, 0.80, 0.55]]
)
SEED_WEIGHTS_2 = [0.1500, 0.2264, 0.2199, 0.1311, 0.0906, 0.1820]
SEED_CONTEXT_2 = [0.3061, 0.8210]
SEED_V1_ROW_1 = [0.2996, 0.8053]
SEED_V2_ROW_1 = [-0.0739, 0.0713]
ORACLE_ATOL = 1.5e-4  # the oracles are printed to four decimals


def _weights(q, k, scale):
    return torch.softmax(q @ k.transpose(-2, -1) / scale, dim=-1)


def reference_attention(queries, keys, values):
    """(context, weights): context from ``F.scaled_dot_product_attention``."""
    weights = _weights(queries, keys, math.sqrt(keys.shape[-1]))
    return F.scaled_dot_product_attention(queries, keys, values), weights


def _wrong_scale(scale_of):
    def output(queries, keys, values):
        w = _weights(queries, keys, scale_of(queries, keys, values))
        return w @ values, w
    return output


def _softmax_over_queries(queries, keys, values):
    w = torch.softmax(queries @ keys.transpose(-2, -1) / math.sqrt(keys.shape[-1]), dim=-2)
    return w @ values, w


def _unnormalised(queries, keys, values):
    scores = queries @ keys.transpose(-2, -1) / math.sqrt(keys.shape[-1])
    return torch.softmax(scores, dim=-1) @ values, scores


def _transposed_scores(queries, keys, values):
    w = _weights(keys, queries, math.sqrt(keys.shape[-1]))
    return w @ values, w


ATTENTION_MISTAKES = (
    Mistake("no_scale", _wrong_scale(lambda q, k, v: 1.0),
            "the scores are not scaled: divide QK^T by sqrt(d_k) before the softmax"),
    Mistake("scale_by_d_k", _wrong_scale(lambda q, k, v: k.shape[-1]),
            "the scores are divided by d_k; divide by sqrt(d_k) instead"),
    Mistake("scale_by_d_v", _wrong_scale(lambda q, k, v: math.sqrt(v.shape[-1])),
            "the scores are divided by sqrt(d_v) (the values' width); the scale is "
            "sqrt(d_k), the width of the queries and keys"),
    Mistake("softmax_over_queries", _softmax_over_queries,
            "the softmax runs over the query axis (dim=-2): each row of weights must "
            "sum to 1 over the keys (dim=-1)"),
    Mistake("unnormalised_weights", _unnormalised,
            "the returned weights are the scaled scores, not their softmax: return "
            "the normalised attention weights"),
    Mistake("transposed_operand", _transposed_scores,
            "the scores are K Q^T instead of Q K^T: transpose the keys, not the queries"),
)
TRANSPOSE_HINT = ("With T_q != T_k a shape error usually means the wrong operand was "
                  "transposed: the scores are queries @ keys.transpose(-2, -1).")


def _qkv(batch, t_q, t_k, d_k, d_v):
    def inputs(g):
        return dict(queries=torch.randn(*batch, t_q, d_k, generator=g),
                    keys=torch.randn(*batch, t_k, d_k, generator=g),
                    values=torch.randn(*batch, t_k, d_v, generator=g))
    return inputs


def _shape_name(batch, t_q, t_k, d_k, d_v):
    return f"batch {list(batch)}, T_q={t_q}, T_k={t_k}, d_k={d_k}, d_v={d_v}"


# Unsaturated: unit-variance entries, so scaled scores are of order 1 and a
# missing sqrt(d_k) cannot hide behind a one-hot softmax.
SHAPES = [((), 4, 6, 8, 5), ((3,), 4, 6, 16, 3), ((2, 3), 5, 7, 16, 4), ((2,), 6, 6, 8, 8)]

sdpa_matches_builtin = Check(
    name="sdpa_matches_builtin",
    target="scaled_dot_product_attention",
    cases=[Case(name=_shape_name(*s), inputs=_qkv(*s), reference=reference_attention,
                outputs=("context", "weights"), seed=300 + i, mistakes=ATTENTION_MISTAKES,
                hint_on_error=TRANSPOSE_HINT if s[1] != s[2] else "")
           for i, s in enumerate(SHAPES)],
)

sdpa_rows_sum_to_one = Check(
    name="sdpa_rows_sum_to_one",
    target="scaled_dot_product_attention",
    cases=[Case(name="row sums of the weights, " + _shape_name(*s), inputs=_qkv(*s),
                reference=lambda queries, keys, values: torch.ones(queries.shape[:-1]),
                measure=lambda out, inputs: out[1].sum(-1), outputs=("weights.sum(-1)",),
                seed=310 + i, mistakes=ATTENTION_MISTAKES[3:5],
                hint_on_error=TRANSPOSE_HINT if s[1] != s[2] else "")
           for i, s in enumerate(SHAPES[:3])],
)


def _seed_projections():
    torch.manual_seed(123)
    return [torch.rand(3, 2) for _ in range(3)]


def _seed_qkv(g):
    w_query, w_key, w_value = _seed_projections()
    x = SEED_INPUTS
    return dict(queries=x[1:2] @ w_query, keys=x @ w_key, values=x @ w_value)


sdpa_seed_oracle = Check(
    name="sdpa_seed_oracle",
    target="scaled_dot_product_attention",
    cases=[Case(name="'Your journey starts with one step', query x^2, seed 123",
                inputs=_seed_qkv,
                reference=lambda **_: (torch.tensor([SEED_CONTEXT_2]), torch.tensor([SEED_WEIGHTS_2])),
                outputs=("context_2", "weights_2"), atol=ORACLE_ATOL, rtol=0.0,
                mistakes=ATTENTION_MISTAKES)],
)


def _module_attention(project, scale_of=lambda d_in, d_out: math.sqrt(d_out)):
    def output(state, x):
        q, k, v = (project(state, name, x) for name in ("W_query", "W_key", "W_value"))
        w = _weights(q, k, scale_of(x.shape[-1], k.shape[-1]))
        return w @ v
    return output


def _project_v1(state, name, x):
    return x @ state[name]


def _project_v2(state, name, x):
    return F.linear(x, state[f"{name}.weight"], state.get(f"{name}.bias"))


def _module_mistakes(project):
    return (
        Mistake("scale_by_sqrt_d_in", _module_attention(project, lambda d_in, d_out: math.sqrt(d_in)),
                "the scores are divided by sqrt(d_in) (the model width); the scale is "
                "sqrt(d_k) = sqrt(d_out), the width of the keys"),
        Mistake("no_scale", _module_attention(project, lambda d_in, d_out: 1.0),
                "the scores are not scaled: divide by sqrt(d_k) = sqrt(d_out)"),
        Mistake("scale_by_d_k", _module_attention(project, lambda d_in, d_out: d_out),
                "the scores are divided by d_k; divide by sqrt(d_k) instead"),
    )


def _embeddings(batch, t, d_in):
    return lambda g: dict(x=torch.randn(*batch, t, d_in, generator=g))


def _module_check(name, target, project, seed, oracle_row, extra_init=()):
    oracle = Case(name=f"'Your journey starts with one step', torch.manual_seed({seed})",
                  inputs=lambda g: dict(x=SEED_INPUTS.clone()), init=dict(d_in=3, d_out=2),
                  init_seed=seed, reference=lambda state, x: torch.tensor(oracle_row),
                  measure=lambda out, inputs: out[0][0], outputs=("first row",), atol=ORACLE_ATOL,
                  rtol=0.0, keep_init=True, mistakes=_module_mistakes(project))
    randoms = [Case(name=f"d_in={d_in}, d_out={d_out}, batch {list(batch)}, T={t}" + (f", {init}" if init else ""),
                    inputs=_embeddings(batch, t, d_in), init=dict(d_in=d_in, d_out=d_out, **init),
                    init_seed=seed + i, seed=320 + i, reference=_module_attention(project),
                    mistakes=_module_mistakes(project))
               for i, (batch, t, d_in, d_out, init) in enumerate(
                   [((), 5, 6, 4, {}), ((2,), 7, 16, 4, {})] + list(extra_init))]
    return Check(name=name, target=target, kind="module", cases=[oracle] + randoms)


self_attention_v1 = _module_check("self_attention_v1", "SelfAttention_v1", _project_v1, 123, SEED_V1_ROW_1)
self_attention_v2 = _module_check("self_attention_v2", "SelfAttention_v2", _project_v2, 789, SEED_V2_ROW_1,
                                  extra_init=[((3,), 4, 8, 2, {"qkv_bias": True})])


def _std_case(d_k, scaled, seed):
    return Case(
        name=f"d_k={d_k}, scaled={scaled}",
        inputs=lambda g: dict(d_k=d_k, n_samples=10000, scaled=scaled, generator=child_generator(g)), seed=seed,
        reference=lambda d_k, scaled, **_: 1.0 if scaled else math.sqrt(d_k),
        outputs=("std",), atol=0.0, rtol=0.06,
        mistakes=(Mistake("variance", lambda d_k, scaled, **_: 1.0 if scaled else float(d_k),
                          "this is the variance of q·k (about d_k); return its standard deviation"),
                  Mistake("scaled_by_d_k", lambda d_k, scaled, **_: 1 / math.sqrt(d_k) if scaled else math.sqrt(d_k),
                          "when scaled, divide q·k by sqrt(d_k), not by d_k"),
                  Mistake("not_scaled", lambda d_k, scaled, **_: math.sqrt(d_k),
                          "scaled=True must divide each q·k by sqrt(d_k)")),
    )


score_std_statistics = Check(
    name="score_std_statistics",
    target="score_std",
    cases=[_std_case(d, s, 330 + i)
           for i, (d, s) in enumerate([(1, False), (16, False), (256, False), (16, True), (256, True)])],
)
