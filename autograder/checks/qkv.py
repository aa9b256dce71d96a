"""Checks for assignment 02_qkv (COURSE_SPEC.md).

References come from PyTorch: ``torch.matmul`` for the projections and the
scores, ``torch.softmax`` for soft lookup and ``torch.argmax`` for hard lookup
(the database view of attention, Zhang et al. 2023, sec. 11.1).
"""
from __future__ import annotations

import torch

from .core import Case, Check, Mistake

# ------------------------------------------------------------------ project_qkv


def reference_project(x, W_query, W_key, W_value):
    """(queries, keys, values) = (x W_query, x W_key, x W_value)."""
    return torch.matmul(x, W_query), torch.matmul(x, W_key), torch.matmul(x, W_value)


def _T(w):
    return w.transpose(-2, -1)


TRANSPOSED = ("transposed projections (W.T): each W has shape [d_in, d_out] and x is "
              "[..., T, d_in], so compute x @ W, not x @ W.T (it is nn.Linear that stores "
              "its weight as [d_out, d_in] and multiplies by the transpose)")
PROJECT_MISTAKES = (
    Mistake("transposed_projections", lambda x, W_query, W_key, W_value:
            (x @ _T(W_query), x @ _T(W_key), x @ _T(W_value)), TRANSPOSED),
    Mistake("weights_first", lambda x, W_query, W_key, W_value:
            (W_query @ x, W_key @ x, W_value @ x),
            "the product is W @ x; with row vectors (PyTorch's convention) it is x @ W"),
    Mistake("wrong_order", lambda x, W_query, W_key, W_value:
            (x @ W_key, x @ W_query, x @ W_value),
            "queries and keys are swapped: return (x @ W_query, x @ W_key, x @ W_value) "
            "in this order"),
    Mistake("one_matrix", lambda x, W_query, W_key, W_value:
            (x @ W_query, x @ W_query, x @ W_query),
            "the three outputs all use W_query: each role has its own matrix"),
)


def _project_inputs(batch, t, d_in, d_out):
    def inputs(g):
        return dict(x=torch.randn(*batch, t, d_in, generator=g),
                    W_query=torch.randn(d_in, d_out, generator=g),
                    W_key=torch.randn(d_in, d_out, generator=g),
                    W_value=torch.randn(d_in, d_out, generator=g))
    return inputs


PROJECT_SHAPES = [((), 4, 3, 3), ((), 6, 3, 2), ((2,), 5, 4, 4), ((2, 3), 4, 8, 5)]

project_qkv_matches_builtin = Check(
    name="project_qkv_matches_builtin",
    target="project_qkv",
    cases=[Case(name=f"x {list(b) + [t, di]}, W [{di}, {do}]", inputs=_project_inputs(b, t, di, do),
                reference=reference_project, outputs=("queries", "keys", "values"), seed=200 + i,
                mistakes=PROJECT_MISTAKES,
                hint_on_error="A shape error with d_in != d_out usually means " + TRANSPOSED + ".")
           for i, (b, t, di, do) in enumerate(PROJECT_SHAPES)],
)

# -------------------------------------------------------------- attention_scores


def reference_scores(queries, keys):
    """Unscaled dot products ``queries @ keys^T``: ``[..., T_q, T_k]``."""
    return torch.matmul(queries, _T(keys))


SWAPPED = ("scores with keys and queries swapped (keys @ queries^T): row i must hold "
           "query i's dot products with every key, so compute queries @ keys^T, of "
           "shape [..., T_q, T_k]")
SCORES_MISTAKES = (
    Mistake("swapped", lambda queries, keys: torch.matmul(keys, _T(queries)), SWAPPED),
    Mistake("scaled", lambda queries, keys: reference_scores(queries, keys) / keys.shape[-1] ** 0.5,
            "the scores are divided by sqrt(d): attention_scores returns the unscaled dot "
            "products (the scale is chapter 3's topic)"),
    Mistake("softmaxed", lambda queries, keys: torch.softmax(reference_scores(queries, keys), dim=-1),
            "the softmax was applied: attention_scores returns the raw dot products"),
)


def _qk(batch, t_q, t_k, d):
    return lambda g: dict(queries=torch.randn(*batch, t_q, d, generator=g),
                          keys=torch.randn(*batch, t_k, d, generator=g))


attention_scores_matches_builtin = Check(
    name="attention_scores_matches_builtin",
    target="attention_scores",
    cases=[Case(name=f"batch {list(b)}, T_q={tq}, T_k={tk}, d={d}", inputs=_qk(b, tq, tk, d),
                reference=reference_scores, outputs=("scores",), seed=210 + i,
                mistakes=SCORES_MISTAKES,
                hint_on_error="" if tq == tk else "With T_q != T_k a shape error often means "
                "the wrong operand was transposed: " + SWAPPED + ".")
           for i, (b, tq, tk, d) in enumerate([((), 3, 5, 4), ((), 4, 4, 6), ((2,), 2, 6, 3),
                                               ((2, 3), 5, 3, 8)])],
)

# ------------------------------------------------------- soft and hard lookup


def reference_soft_lookup(query, keys, values):
    """``softmax(keys @ query) @ values`` (unscaled): ``[d_v]``."""
    return torch.matmul(torch.softmax(torch.matmul(keys, query), dim=-1), values)


def reference_hard_lookup(query, keys, values):
    """``values[argmax(keys @ query)]``: ``[d_v]``."""
    return values[torch.argmax(torch.matmul(keys, query))]


NO_SOFTMAX = ("soft lookup without softmax: the scores keys @ query must go through "
              "torch.softmax before they weight the values, so that the weights are "
              "positive and sum to 1")
SOFT_MISTAKES = (
    Mistake("no_softmax", lambda query, keys, values: torch.matmul(keys, query) @ values, NO_SOFTMAX),
    Mistake("sum_normalised", lambda query, keys, values:
            (lambda s: (s / s.sum()) @ values)(torch.matmul(keys, query)),
            NO_SOFTMAX + " (dividing the scores by their sum is not a softmax: scores can "
            "be negative)"),
    Mistake("scaled", lambda query, keys, values:
            torch.softmax(keys @ query / query.shape[-1] ** 0.5, dim=-1) @ values,
            "the scores are divided by sqrt(d): soft_lookup is unscaled "
            "(softmax(keys @ query) @ values)"),
    Mistake("hard", reference_hard_lookup,
            "this is the hard lookup (the value of the best key only): soft lookup "
            "averages all values, weighted by softmax(keys @ query)"),
)
HARD_MISTAKES = (
    Mistake("argmin", lambda query, keys, values: values[torch.argmin(keys @ query)],
            "this is the value of the *least* similar key: use argmax"),
    Mistake("returns_key", lambda query, keys, values: keys[torch.argmax(keys @ query)],
            "this is the best-matching key; return its value, values[argmax(keys @ query)]"),
    Mistake("soft", reference_soft_lookup,
            "this is the soft lookup (a weighted average): hard lookup returns the one "
            "value whose key scores highest"),
)


def _lookup(n, d, d_v, scale=1.0):
    """Unit-variance keys and a query of length about ``scale``: unsaturated scores."""
    def inputs(g):
        return dict(query=scale * torch.randn(d, generator=g) / d ** 0.5,
                    keys=torch.randn(n, d, generator=g),
                    values=torch.randn(n, d_v, generator=g))
    return inputs


LOOKUP_SHAPES = [(5, 4, 3), (8, 6, 2), (3, 2, 5), (10, 16, 4)]

soft_lookup_matches_builtin = Check(
    name="soft_lookup_matches_builtin",
    target="soft_lookup",
    cases=[Case(name=f"N={n} keys, d={d}, d_v={dv}", inputs=_lookup(n, d, dv), seed=220 + i,
                reference=reference_soft_lookup, mistakes=SOFT_MISTAKES,
                hint_on_error="query is [d], keys [N, d]: the scores are keys @ query, of shape [N].")
           for i, (n, d, dv) in enumerate(LOOKUP_SHAPES)],
)

hard_lookup_matches_builtin = Check(
    name="hard_lookup_matches_builtin",
    target="hard_lookup",
    cases=[Case(name=f"N={n} keys, d={d}, d_v={dv}", inputs=_lookup(n, d, dv, scale=3.0), seed=230 + i,
                reference=reference_hard_lookup, mistakes=HARD_MISTAKES,
                hint_on_error="query is [d], keys [N, d]: the scores are keys @ query, of shape [N].")
           for i, (n, d, dv) in enumerate(LOOKUP_SHAPES)],
)

# Smaller groups for the test cells that come first in the notebook, so that a
# learner's points can be split between a first and a thorough test.
attention_scores_unbatched = Check(
    name="attention_scores_unbatched", target="attention_scores",
    cases=attention_scores_matches_builtin.cases[:2],
)
soft_lookup_small = Check(
    name="soft_lookup_small", target="soft_lookup",
    cases=soft_lookup_matches_builtin.cases[:2],
)
