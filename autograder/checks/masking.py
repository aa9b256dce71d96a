"""Checks for assignment 04_masking (COURSE_SPEC.md).

Masks are boolean with True = "may attend", the convention of
``F.scaled_dot_product_attention``.  References: ``torch.tril`` for the causal
mask, ``torch.arange(max_len) < lengths`` for the padding mask, ``torch.softmax``
of the scores filled with -inf (fully masked rows set to 0, as
``F.scaled_dot_product_attention`` does) for the weights, and
``F.scaled_dot_product_attention(..., attn_mask=mask)`` for the context
(Vaswani et al. 2017, sec. 3.2.3; Raschka 2024, ch. 3.5).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .core import Case, Check, Mistake

NEG_INF = float("-inf")


# ---------------------------------------------------------------- references
def reference_causal_mask(T):
    """bool [T, T], True on and below the diagonal."""
    return torch.ones(T, T, dtype=torch.bool).tril()


def reference_padding_mask(lengths, max_len):
    """bool [B, 1, max_len], True at the first lengths[b] positions."""
    return (torch.arange(max_len) < lengths[:, None]).unsqueeze(1)


def reference_masked_softmax(scores, mask, dim=-1):
    """softmax over ``dim`` of the scores filled with -inf where mask is False;
    rows with nothing to attend to are all zeros."""
    filled = scores.masked_fill(~mask, NEG_INF)
    return torch.softmax(filled, dim=dim).nan_to_num(0.0)


def reference_attention(queries, keys, values, mask=None):
    """(context, weights); the context comes from ``F.scaled_dot_product_attention``."""
    scores = queries @ keys.transpose(-2, -1) / math.sqrt(keys.shape[-1])
    if mask is None:
        weights = torch.softmax(scores, dim=-1)
    else:
        weights = reference_masked_softmax(scores, mask.expand_as(scores))
    return F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask), weights


# ---------------------------------------------------------------- known mistakes
def _softmax_variant(kind):
    """A wrong masked softmax: scores [..], mask broadcastable -> weights."""
    def softmax(scores, mask, dim=-1):
        mask = mask.expand_as(scores)
        if kind == "inverted":
            return torch.softmax(scores.masked_fill(mask, NEG_INF), dim=dim).nan_to_num(0.0)
        if kind == "inverted_nan":
            return torch.softmax(scores.masked_fill(mask, NEG_INF), dim=dim)
        if kind == "fill_zero":
            return torch.softmax(scores.masked_fill(~mask, 0.0), dim=dim)
        if kind == "after_softmax":
            return torch.softmax(scores, dim=dim) * mask
        if kind == "nan":
            return torch.softmax(scores.masked_fill(~mask, NEG_INF), dim=dim)
        if kind == "large_negative":
            return torch.softmax(scores.masked_fill(~mask, -1e9), dim=dim)
        if kind == "ignored":
            return torch.softmax(scores, dim=dim)
        raise ValueError(kind)
    return softmax


MESSAGES = {
    "inverted": "inverted mask polarity: True means 'may attend' (the convention of "
                "F.scaled_dot_product_attention), so fill the positions where the mask is False",
    "inverted_nan": "inverted mask polarity: True means 'may attend' (the convention of "
                    "F.scaled_dot_product_attention), so fill the positions where the mask is False",
    "fill_zero": "the masked scores are filled with 0 instead of -inf: a score of 0 still "
                 "gets weight exp(0) > 0 after the softmax; use float('-inf')",
    "after_softmax": "the mask is applied after the softmax without renormalising: the "
                     "rows no longer sum to 1; fill the scores with -inf before the softmax",
    "nan": "a fully masked row gives NaN (softmax of a row of -inf is 0/0): return zeros "
           "for rows with nothing to attend to, e.g. with torch.nan_to_num or masked_fill",
    "large_negative": "a fully masked row gets uniform weights (every score was replaced "
                      "by the same large negative number): such a row must be all zeros",
    "ignored": "the mask is ignored: masked positions still get weight",
}


def _softmax_mistakes(kinds):
    return tuple(Mistake(k, _softmax_variant(k), MESSAGES[k]) for k in kinds)


def _attention_variant(kind):
    softmax = _softmax_variant(kind)

    def attention(queries, keys, values, mask=None):
        scores = queries @ keys.transpose(-2, -1) / math.sqrt(keys.shape[-1])
        weights = torch.softmax(scores, -1) if mask is None else softmax(scores, mask)
        return weights @ values, weights
    return attention


def _attention_mistakes(kinds):
    return tuple(Mistake(k, _attention_variant(k), MESSAGES[k]) for k in kinds)


# ---------------------------------------------------------------- boolean outputs
# core's comparison subtracts tensors, which bool tensors do not support: masks
# are compared as (is it bool?, its values as float) through ``measure``, and
# the references and mistakes go through the same function.
BOOL_OUTPUTS = ("dtype is torch.bool (1 = yes)", "mask")


def _bool_measure(out, inputs=None):
    mask = out[0]
    return float(mask.dtype == torch.bool), mask.float()


def _measured(fn):
    """A reference in the measured form: (1.0, mask as float)."""
    return lambda *args, **kwargs: _bool_measure((fn(*args, **kwargs),))


def _float_mistake(fn, what):
    return Mistake("float_mask", lambda *a, **k: fn(*a, **k).float(),
                   f"{what} is a float tensor: return a boolean mask (dtype=torch.bool), "
                   "True where attending is allowed")


# ---------------------------------------------------------------- causal_mask
CAUSAL_MISTAKES = (
    Mistake("inverted", lambda T: torch.ones(T, T, dtype=torch.bool).triu(1),
            "inverted mask polarity: True must mean 'may attend', so True on and below "
            "the diagonal (torch.tril), not above it"),
    Mistake("inverted_with_diagonal", lambda T: torch.ones(T, T, dtype=torch.bool).triu(0),
            "inverted mask polarity: True must mean 'may attend', so True on and below "
            "the diagonal (torch.tril), not above it"),
    Mistake("no_diagonal", lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1),
            "the diagonal is masked (diagonal=0 in ~triu, or tril(..., diagonal=-1)): a "
            "token cannot see itself; position t may attend to positions 0..t inclusive"),
    Mistake("upper", lambda T: ~torch.ones(T, T, dtype=torch.bool).triu(0),
            "the diagonal is masked (diagonal=0 in ~triu, or tril(..., diagonal=-1)): a "
            "token cannot see itself; position t may attend to positions 0..t inclusive"),
)

causal_mask_values = Check(
    name="causal_mask_values",
    target="causal_mask",
    cases=[Case(name=f"T={T}", inputs=lambda g, T=T: dict(T=T), reference=_measured(reference_causal_mask),
                outputs=BOOL_OUTPUTS, measure=_bool_measure,
                mistakes=CAUSAL_MISTAKES + (_float_mistake(reference_causal_mask, "the mask"),))
           for T in (5, 2, 9, 1)],
)


# ---------------------------------------------------------------- padding_mask
def _lengths(values, max_len):
    return lambda g: dict(lengths=torch.tensor(values, dtype=torch.long), max_len=max_len)


PADDING_MISTAKES = (
    Mistake("inverted", lambda lengths, max_len: ~reference_padding_mask(lengths, max_len),
            "inverted mask polarity: True must mark the real tokens (positions < length), "
            "False the padding"),
    Mistake("no_query_axis", lambda lengths, max_len: reference_padding_mask(lengths, max_len)[:, 0],
            "the mask has shape [B, max_len]: add the query axis, [B, 1, max_len], so that "
            "it broadcasts over the queries of scores [B, T_q, T_k]"),
    Mistake("off_by_one", lambda lengths, max_len: (torch.arange(max_len) <= lengths[:, None]).unsqueeze(1),
            "one position too many is True: a sequence of length L has real tokens at "
            "positions 0..L-1 (use <, not <=)"),
)

padding_mask_values = Check(
    name="padding_mask_values",
    target="padding_mask",
    cases=[Case(name=f"lengths={v}, max_len={m}", inputs=_lengths(v, m), reference=_measured(reference_padding_mask),
                outputs=BOOL_OUTPUTS, measure=_bool_measure,
                mistakes=PADDING_MISTAKES + (_float_mistake(reference_padding_mask, "the mask"),))
           for v, m in (([3], 5), ([4, 1, 6], 6), ([2, 5, 3, 5], 7), ([0, 2], 3))],
)


# ---------------------------------------------------------------- masked_softmax
def _scores_and_mask(shape, mask_of):
    def inputs(g):
        scores = torch.randn(*shape, generator=g)
        return dict(scores=scores, mask=mask_of(shape, g))
    return inputs


def _causal_of(shape, g):
    return reference_causal_mask(shape[-1])


def _random_of(shape, g):
    """A random mask with at least one True per row (no fully masked row)."""
    mask = torch.rand(*shape, generator=g) < 0.6
    mask[..., 0] = True
    return mask


def _padding_of(lengths):
    def mask_of(shape, g):
        return reference_padding_mask(torch.tensor(lengths), shape[-1])
    return mask_of


def _fully_masked_of(shape, g):
    """Rows 0 and 2 of every batch item have nothing to attend to."""
    mask = torch.rand(*shape, generator=g) < 0.6
    mask[..., 1, 0] = True
    mask[..., 0, :] = False
    mask[..., 2, :] = False
    return mask


ORDINARY_SOFTMAX_MISTAKES = _softmax_mistakes(("inverted", "inverted_nan", "fill_zero", "after_softmax", "ignored"))

masked_softmax_values = Check(
    name="masked_softmax_values",
    target="masked_softmax",
    cases=[
        Case(name="causal mask [5, 5] on scores [5, 5]", inputs=_scores_and_mask((5, 5), _causal_of),
             reference=reference_masked_softmax, outputs=("weights",), seed=400,
             mistakes=ORDINARY_SOFTMAX_MISTAKES),
        Case(name="causal mask [6, 6] on scores [2, 3, 6, 6]", inputs=_scores_and_mask((2, 3, 6, 6), _causal_of),
             reference=reference_masked_softmax, outputs=("weights",), seed=401,
             mistakes=ORDINARY_SOFTMAX_MISTAKES),
        Case(name="padding mask [3, 1, 5] on scores [3, 4, 5]", inputs=_scores_and_mask((3, 4, 5), _padding_of([5, 2, 3])),
             reference=reference_masked_softmax, outputs=("weights",), seed=402,
             mistakes=ORDINARY_SOFTMAX_MISTAKES),
        Case(name="random mask [2, 4, 7]", inputs=_scores_and_mask((2, 4, 7), _random_of),
             reference=reference_masked_softmax, outputs=("weights",), seed=403,
             mistakes=ORDINARY_SOFTMAX_MISTAKES),
        Case(name="random mask [4, 6], dim=-2",
             inputs=lambda g: dict(scores=torch.randn(4, 6, generator=g),
                                   mask=_random_of((6, 4), g).T, dim=-2),
             reference=reference_masked_softmax, outputs=("weights",), seed=404,
             mistakes=ORDINARY_SOFTMAX_MISTAKES),
    ],
)

# An inverted mask leaves a fully masked row's scores as they are and masks a fully
# allowed row completely: the same kinds that explain ordinary rows explain these.
FULLY_MASKED_KINDS = ("nan", "large_negative", "fill_zero", "after_softmax", "inverted", "inverted_nan")
FULLY_MASKED_MISTAKES = _softmax_mistakes(FULLY_MASKED_KINDS)

masked_softmax_fully_masked = Check(
    name="masked_softmax_fully_masked",
    target="masked_softmax",
    cases=[Case(name=f"rows 0 and 2 fully masked, scores {list(shape)}",
                inputs=_scores_and_mask(shape, _fully_masked_of), reference=reference_masked_softmax,
                outputs=("weights",), seed=410 + i,
                mistakes=FULLY_MASKED_MISTAKES)
           for i, shape in enumerate([(4, 5), (2, 3, 6)])]
    + [Case(name="padding with a length-0 sequence, scores [2, 3, 4]",
            inputs=_scores_and_mask((2, 3, 4), _padding_of([3, 0])), reference=reference_masked_softmax,
            outputs=("weights",), seed=412,
            mistakes=FULLY_MASKED_MISTAKES)],
)


# ---------------------------------------------------------------- scaled_dot_product_attention
def _qkv(batch, t_q, t_k, d_k, d_v, mask_of=None):
    def inputs(g):
        out = dict(queries=torch.randn(*batch, t_q, d_k, generator=g),
                   keys=torch.randn(*batch, t_k, d_k, generator=g),
                   values=torch.randn(*batch, t_k, d_v, generator=g))
        if mask_of is not None:
            out["mask"] = mask_of(g)
        return out
    return inputs


ATTENTION_MISTAKES = _attention_mistakes(("inverted", "inverted_nan", "fill_zero", "after_softmax", "ignored"))


def _sdpa_case(name, inputs, seed, kinds=None):
    mistakes = ATTENTION_MISTAKES if kinds is None else _attention_mistakes(kinds)
    return Case(name=name, inputs=inputs, reference=reference_attention, outputs=("context", "weights"),
                seed=seed, mistakes=mistakes)


sdpa_masked_matches_builtin = Check(
    name="sdpa_masked_matches_builtin",
    target="scaled_dot_product_attention",
    cases=[
        _sdpa_case("no mask, batch [2], T_q=4, T_k=6", _qkv((2,), 4, 6, 8, 5), 420),
        _sdpa_case("causal mask [5, 5], batch [2, 3], d_k=16", _qkv((2, 3), 5, 5, 16, 4, lambda g: reference_causal_mask(5)), 421),
        _sdpa_case("padding mask [3, 1, 6], T_q=4, T_k=6",
                   _qkv((3,), 4, 6, 8, 8, lambda g: reference_padding_mask(torch.tensor([6, 2, 4]), 6)), 422),
        _sdpa_case("random mask [2, 5, 7]", _qkv((2,), 5, 7, 8, 3, lambda g: _random_of((2, 5, 7), g)), 423),
    ],
)

sdpa_masked_fully_masked = Check(
    name="sdpa_masked_fully_masked",
    target="scaled_dot_product_attention",
    cases=[_sdpa_case("rows 0 and 2 fully masked, batch [2], T_q=4, T_k=5",
                      _qkv((2,), 4, 5, 8, 3, lambda g: _fully_masked_of((2, 4, 5), g)), 430,
                      FULLY_MASKED_KINDS)],
)


# ---------------------------------------------------------------- CausalAttention
def _causal_module(kind="correct", dropout_active=False):
    """Output of a CausalAttention computed from its state_dict (eval mode)."""
    def output(state, x):
        def proj(name):
            return F.linear(x, state[f"{name}.weight"], state.get(f"{name}.bias"))
        q, k, v = proj("W_query"), proj("W_key"), proj("W_value")
        T = x.shape[-2]
        scores = q @ k.transpose(-2, -1) / math.sqrt(k.shape[-1])
        if kind == "no_diagonal":
            weights = _softmax_variant("nan")(scores, torch.ones(T, T, dtype=torch.bool).tril(-1))
        elif kind == "correct":
            weights = reference_masked_softmax(scores, reference_causal_mask(T).expand_as(scores))
        else:
            weights = _softmax_variant(kind)(scores, reference_causal_mask(T))
        if dropout_active:  # dropout with p=1 in training mode zeroes every weight
            weights = torch.zeros_like(weights)
        return weights @ v
    return output


def _causal_mistakes(dropout=False):
    named = [Mistake(k, _causal_module(k), MESSAGES[k])
             for k in ("inverted", "inverted_nan", "fill_zero", "after_softmax")]
    named += [
        Mistake("ignored", _causal_module("ignored"),
                "the causal mask is not applied: every position attends to the future"),
        Mistake("no_diagonal", _causal_module("no_diagonal"),
                "the diagonal is masked (diagonal=0): a token cannot see itself; use "
                "torch.tril(torch.ones(T, T, dtype=torch.bool)) as the mask"),
    ]
    if dropout:
        named.insert(0, Mistake("dropout_in_eval", _causal_module(dropout_active=True),
                                "dropout is active in eval mode: use an nn.Dropout module "
                                "(or F.dropout(..., training=self.training)) so that "
                                "model.eval() turns it off"))
    return tuple(named)


SLICE_HINT = ("With T < context_length, slice the buffer to the sequence length: "
              "self.mask[:T, :T].")


def _embeddings(batch, t, d_in):
    return lambda g: dict(x=torch.randn(*batch, t, d_in, generator=g))


def _module_case(name, init, x, seed, init_seed, mode="eval", reference=None, mistakes=None, hint=""):
    return Case(name=name, inputs=x, init=init, init_seed=init_seed, seed=seed, mode=mode,
                reference=reference or _causal_module(), mistakes=_causal_mistakes() if mistakes is None else mistakes,
                hint_on_error=hint)


causal_attention_matches_reference = Check(
    name="causal_attention_matches_reference",
    target="CausalAttention",
    kind="module",
    cases=[
        _module_case("d_in=6, d_out=4, context_length=5, T=5", dict(d_in=6, d_out=4, context_length=5),
                     _embeddings((2,), 5, 6), 440, 1),
        _module_case("d_in=16, d_out=8, context_length=10, T=7 (shorter than the context)",
                     dict(d_in=16, d_out=8, context_length=10), _embeddings((3,), 7, 16), 441, 2,
                     hint=SLICE_HINT),  # the only case where the hint fits the evidence
        _module_case("qkv_bias=True, context_length=4, T=4",
                     dict(d_in=8, d_out=8, context_length=4, qkv_bias=True), _embeddings((1,), 4, 8), 442, 3),
    ],
)


def _changed_future(batch, t, d_in, cut):
    """Batch item 1 equals item 0 up to position cut-1 and differs after it."""
    def inputs(g):
        x = torch.randn(2 * batch, t, d_in, generator=g)
        x[batch:, :cut] = x[:batch, :cut]
        return dict(x=x)
    return inputs


def _prefix_difference(batch, cut):
    def measure(out, inputs):
        y = out[0]
        return ((y[batch:, :cut] - y[:batch, :cut]).abs().amax(),)
    return measure


def _future_case(batch, t, d_in, d_out, cut, seed):
    return Case(name=f"inputs changed after position {cut - 1} of {t}",
                inputs=_changed_future(batch, t, d_in, cut), init=dict(d_in=d_in, d_out=d_out, context_length=t),
                init_seed=seed, seed=seed,
                reference=lambda state, x: torch.tensor(0.0), measure=_prefix_difference(batch, cut),
                outputs=("max change of the outputs before the change",), atol=1e-5,
                mistakes=(Mistake("future_visible", _causal_module("ignored"),
                                  "changing the inputs after position t changed the outputs at "
                                  "positions <= t: the future is not masked (or the mask has "
                                  "inverted polarity); output t may depend only on inputs 0..t"),
                          Mistake("inverted", _causal_module("inverted"), MESSAGES["inverted"]),
                          Mistake("fill_zero", _causal_module("fill_zero"), MESSAGES["fill_zero"])))


causal_attention_no_future = Check(
    name="causal_attention_no_future",
    target="CausalAttention",
    kind="module",
    cases=[_future_case(1, 6, 8, 4, 3, 450), _future_case(2, 9, 16, 8, 5, 451), _future_case(1, 5, 4, 4, 1, 452)],
)

causal_attention_dropout = Check(
    name="causal_attention_dropout",
    target="CausalAttention",
    kind="module",
    cases=[
        _module_case("dropout=1.0 in eval mode (dropout must be off)",
                     dict(d_in=6, d_out=4, context_length=6, dropout=1.0), _embeddings((2,), 6, 6), 460, 4,
                     mistakes=_causal_mistakes(dropout=True)),
        _module_case("dropout=0.5 in eval mode (dropout must be off)",
                     dict(d_in=6, d_out=4, context_length=6, dropout=0.5), _embeddings((2,), 6, 6), 461, 5,
                     mistakes=_causal_mistakes(dropout=True)),
        Case(name="dropout=1.0 in training mode (every attention weight is dropped)",
             inputs=_embeddings((2,), 5, 6), init=dict(d_in=6, d_out=4, context_length=5, dropout=1.0),
             init_seed=6, seed=462, mode="train",
             reference=lambda state, x: torch.zeros(2, 5, 4),
             mistakes=(Mistake("no_dropout", _causal_module(),
                               "dropout is never applied: apply nn.Dropout(dropout) to the "
                               "attention weights in training mode"),)),
    ],
)


# The buffer: hidden tests call this check on ``lambda **kw: CausalAttention(**kw).mask``.
causal_attention_buffer = Check(
    name="causal_attention_buffer",
    target="CausalAttention(...).mask",
    cases=[Case(name=f"context_length={n}", inputs=lambda g, n=n: dict(d_in=3, d_out=2, context_length=n),
                reference=_measured(lambda d_in, d_out, context_length: reference_causal_mask(context_length)),
                outputs=BOOL_OUTPUTS, measure=_bool_measure,
                mistakes=(_float_mistake(lambda d_in, d_out, context_length: reference_causal_mask(context_length),
                                         "the mask buffer"),
                          Mistake("inverted", lambda d_in, d_out, context_length:
                                  ~reference_causal_mask(context_length),
                                  "the mask buffer has inverted polarity: True must mean 'may "
                                  "attend', True on and below the diagonal"),
                          Mistake("no_diagonal", lambda d_in, d_out, context_length:
                                  torch.ones(context_length, context_length, dtype=torch.bool).tril(-1),
                                  "the diagonal of the mask buffer is False (diagonal=0): a "
                                  "token cannot see itself")))
           for n in (4, 7)],
)
