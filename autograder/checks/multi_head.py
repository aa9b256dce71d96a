"""Checks for assignment 05_multi_head (COURSE_SPEC.md).

The reference for ``MultiHeadAttention`` is ``nn.MultiheadAttention(d_model,
num_heads, bias=bias, batch_first=True)`` with the learner's weights copied in
(``in_proj_weight = cat(W_q, W_k, W_v)``, ``out_proj = W_o``), the mask given
as ``attn_mask = ~mask`` (PyTorch's module blocks where True) and
``average_attn_weights=False`` for the per-head weights (Vaswani et al. 2017,
sec. 3.2.2).  Masks are boolean, True = "may attend", of shape [T_q, T_k],
[B, 1, T_k] or [B, T_q, T_k]; the module adds the head axis.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import masks
from .core import Case, Check, Mistake, put


# ---------------------------------------------------------------- split / merge
def reference_split_heads(x, num_heads):
    """[B, T, d_model] -> [B, num_heads, T, d_model // num_heads]."""
    B, T, d_model = x.shape
    return x.view(B, T, num_heads, d_model // num_heads).transpose(1, 2)


def reference_merge_heads(x):
    """[B, h, T, d_head] -> [B, T, h * d_head]."""
    B, h, T, d_head = x.shape
    return x.transpose(1, 2).reshape(B, T, h * d_head)


def _split_view_only(x, num_heads):
    B, T, d_model = x.shape
    return x.reshape(B, num_heads, T, d_model // num_heads)


def _merge_without_transpose(x):
    B, h, T, d_head = x.shape
    return x.reshape(B, T, h * d_head)


VIEW_ONLY = ("the heads were split with view/reshape alone, without transpose: "
             "x.view(B, h, T, d_head) cuts the memory of each sequence into h chunks of "
             "consecutive tokens; use x.view(B, T, h, d_head).transpose(1, 2)")
MERGE_NO_TRANSPOSE = ("the heads were merged without transpose: x.reshape(B, T, h * d_head) "
                      "on a [B, h, T, d_head] tensor mixes tokens; use "
                      "x.transpose(1, 2).reshape(B, T, h * d_head) (or .contiguous().view)")

split_heads_values = Check(
    name="split_heads_values",
    target="split_heads",
    cases=[Case(name=f"x [{B}, {T}, {d}], num_heads={h}",
                inputs=lambda g, B=B, T=T, d=d, h=h: dict(x=torch.randn(B, T, d, generator=g), num_heads=h),
                reference=reference_split_heads, seed=500 + i,
                mistakes=(Mistake("view_only", _split_view_only, VIEW_ONLY),))
           for i, (B, T, d, h) in enumerate([(1, 3, 4, 2), (2, 5, 12, 3), (3, 4, 16, 4), (2, 6, 8, 1)])]
    + [Case(name=f"num_heads={h} does not divide d_model={d}", seed=505 + i, reference=None,
            inputs=lambda g, d=d, h=h: dict(x=torch.randn(2, 3, d, generator=g), num_heads=h),
            raises="ValueError", error_names="num_heads")
       for i, (d, h) in enumerate([(10, 4), (12, 5)])],
)

merge_heads_values = Check(
    name="merge_heads_values",
    target="merge_heads",
    cases=[Case(name=f"x [{B}, {h}, {T}, {d}]",
                inputs=lambda g, B=B, h=h, T=T, d=d: dict(x=torch.randn(B, h, T, d, generator=g)),
                reference=reference_merge_heads, seed=510 + i,
                mistakes=(Mistake("merge_no_transpose", _merge_without_transpose, MERGE_NO_TRANSPOSE),),
                hint_on_error="after transpose(1, 2) the tensor is not contiguous: use "
                              ".reshape(...) or .contiguous().view(...)")
           for i, (B, h, T, d) in enumerate([(1, 2, 3, 2), (2, 3, 5, 4), (3, 4, 4, 4)])],
)


# ---------------------------------------------------------------- MultiHeadAttention
def copy_into_builtin(mha: nn.MultiheadAttention, state, prefix: str = "") -> None:
    """Copy our MultiHeadAttention's W_q, W_k, W_v, W_o (``state`` entries under
    ``prefix``) into ``nn.MultiheadAttention``: in_proj = cat(W_q, W_k, W_v),
    out_proj = W_o (COURSE_SPEC.md, 05_multi_head)."""
    p = f"{prefix}." if prefix else ""
    put(mha, "in_proj_weight", torch.cat([state[f"{p}W_{n}.weight"] for n in "qkv"]))
    put(mha, "out_proj.weight", state[f"{p}W_o.weight"])
    if mha.in_proj_bias is not None:
        put(mha, "in_proj_bias", torch.cat([state[f"{p}W_{n}.bias"] for n in "qkv"]))
        put(mha, "out_proj.bias", state[f"{p}W_o.bias"])


def _builtin(state, num_heads):
    """nn.MultiheadAttention holding the learner's weights (from its state_dict)."""
    d_model = state["W_q.weight"].shape[0]
    mha = nn.MultiheadAttention(d_model, num_heads, bias="W_q.bias" in state, batch_first=True)
    copy_into_builtin(mha, state)
    return mha.eval()


def _attn_mask(mask, batch, num_heads, t_q, t_k):
    """Our mask (True = attend) as nn.MultiheadAttention's attn_mask (True = blocked)."""
    if mask is None:
        return None
    if mask.dim() == 2:
        return ~mask
    return (~mask.expand(batch, t_q, t_k)).repeat_interleave(num_heads, dim=0)


def reference_mha(num_heads):
    def output(state, query, key, value, mask=None):
        mha = _builtin(state, num_heads)
        B, t_q, t_k = query.shape[0], query.shape[1], key.shape[1]
        out, weights = mha(query, key, value, attn_mask=_attn_mask(mask, B, num_heads, t_q, t_k),
                           need_weights=True, average_attn_weights=False)
        return out, weights
    return output


def _wrong_mha(num_heads, split=reference_split_heads, merge=reference_merge_heads,
               scale_of=lambda d_model, d_head: math.sqrt(d_head), w_o=True, head_axis=True):
    """A hand-written multi-head attention with one known mistake."""
    def output(state, query, key, value, mask=None):
        def proj(name, x):
            return F.linear(x, state[f"W_{name}.weight"], state.get(f"W_{name}.bias"))
        d_model = state["W_q.weight"].shape[0]
        q, k, v = (split(proj(n, x), num_heads) for n, x in zip("qkv", (query, key, value)))
        scores = q @ k.transpose(-2, -1) / scale_of(d_model, d_model // num_heads)
        if mask is not None:
            m = mask.unsqueeze(1) if (head_axis and mask.dim() == 3) else mask
            scores = scores.masked_fill(~m, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        out = merge(weights @ v)
        return (proj("o", out) if w_o else out), weights
    return output


def _mha_mistakes(num_heads):
    return (
        Mistake("split_view_only", _wrong_mha(num_heads, split=_split_view_only), VIEW_ONLY),
        Mistake("split_and_merge_view_only",
                _wrong_mha(num_heads, split=_split_view_only, merge=_merge_without_transpose), VIEW_ONLY),
        Mistake("merge_no_transpose", _wrong_mha(num_heads, merge=_merge_without_transpose), MERGE_NO_TRANSPOSE),
        Mistake("scale_by_sqrt_d_model", _wrong_mha(num_heads, scale_of=lambda d_model, d_head: math.sqrt(d_model)),
                "the scores are divided by sqrt(d_model); each head has its own width "
                "d_k = d_model // num_heads, so divide by sqrt(d_k)"),
        Mistake("no_w_o", _wrong_mha(num_heads, w_o=False),
                "the output projection W_o is missing: return W_o(concatenated heads)"),
        Mistake("mask_not_broadcast_over_heads", _wrong_mha(num_heads, head_axis=False),
                "the mask is not broadcast over the heads: a [B, T_q, T_k] or [B, 1, T_k] "
                "mask needs a head axis, mask.unsqueeze(1) -> [B, 1, T_q, T_k], before it "
                "meets the scores [B, h, T_q, T_k]"),
    )


# Hints for an exception, each on the cases whose mask it speaks of.
HEAD_AXIS_HINT = ("If this is a shape error, a [B, T_q, T_k] or [B, 1, T_k] mask "
                  "needs a head axis (mask.unsqueeze(1)) to broadcast over the scores "
                  "[B, h, T_q, T_k].")
TWO_D_MASK_HINT = ("If this is a shape error, a [T_q, T_k] mask broadcasts over the batch and the heads "
                   "as it is: only a [B, T_q, T_k] or [B, 1, T_k] mask needs a head axis (mask.unsqueeze(1)).")


def _tensors(B, t_q, t_k, d_model, cross, mask_of=None):
    def inputs(g):
        query = torch.randn(B, t_q, d_model, generator=g)
        if cross:
            key = torch.randn(B, t_k, d_model, generator=g)
            value = torch.randn(B, t_k, d_model, generator=g)
        else:
            key, value = query, query
        out = dict(query=query, key=key, value=value)
        if mask_of is not None:
            out["mask"] = mask_of(g)
        return out
    return inputs


def _mha_case(name, d_model, h, B, t_q, t_k, seed, cross=False, mask_of=None, bias=True, dropout=0.0, hint=""):
    init = dict(d_model=d_model, num_heads=h, bias=bias)
    if dropout:
        init["dropout"] = dropout
    return Case(name=name, inputs=_tensors(B, t_q, t_k, d_model, cross, mask_of), init=init,
                init_seed=seed, seed=seed, reference=reference_mha(h), outputs=("output", "weights"),
                mistakes=_mha_mistakes(h), hint_on_error=hint)


mha_matches_builtin = Check(
    name="mha_matches_builtin",
    target="MultiHeadAttention",
    kind="module",
    cases=[
        _mha_case("self-attention, d_model=8, 2 heads, B=2, T=5", 8, 2, 2, 5, 5, 520),
        _mha_case("cross-attention, d_model=12, 3 heads, B=2, T_q=4, T_k=6", 12, 3, 2, 4, 6, 521, cross=True),
        _mha_case("self-attention, d_model=16, 4 heads, bias=False, B=1, T=7", 16, 4, 1, 7, 7, 522, bias=False),
        _mha_case("dropout=0.3 in eval mode, d_model=8, 4 heads, B=3, T=4", 8, 4, 3, 4, 4, 523, dropout=0.3),
    ],
)

mha_masks = Check(
    name="mha_masks",
    target="MultiHeadAttention",
    kind="module",
    cases=[
        _mha_case("causal mask [5, 5], d_model=8, 2 heads, B=2", 8, 2, 2, 5, 5, 530, mask_of=masks.causal(5),
                  hint=TWO_D_MASK_HINT),
        _mha_case("per-example mask [2, 4, 4] with B = num_heads = 2", 8, 2, 2, 4, 4, 531,
                  mask_of=masks.per_example(2, 4, 4), hint=HEAD_AXIS_HINT),
        _mha_case("padding mask [3, 1, 6], cross-attention, 3 heads, B=3", 12, 3, 3, 4, 6, 532, cross=True,
                  mask_of=masks.padding([6, 2, 4], 6), hint=HEAD_AXIS_HINT),
        _mha_case("per-example mask [2, 5, 5] with B=2, 4 heads", 16, 4, 2, 5, 5, 533,
                  mask_of=masks.per_example(2, 5, 5), hint=HEAD_AXIS_HINT),
    ],
)


def _single_head_reference(state, query, key, value, mask=None):
    """With one head, multi-head attention is single-head attention followed by W_o."""
    def proj(name, x):
        return F.linear(x, state[f"W_{name}.weight"], state.get(f"W_{name}.bias"))
    q, k, v = proj("q", query), proj("k", key), proj("v", value)
    context = F.scaled_dot_product_attention(q, k, v)
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return proj("o", context), weights.unsqueeze(1)


mha_one_head = Check(
    name="mha_one_head",
    target="MultiHeadAttention",
    kind="module",
    cases=[Case(name=f"num_heads=1, d_model={d}, B={B}, T={T}", inputs=_tensors(B, T, T, d, False),
                init=dict(d_model=d, num_heads=1), init_seed=540 + i, seed=540 + i,
                reference=_single_head_reference, outputs=("output", "weights"), mistakes=_mha_mistakes(1))
           for i, (d, B, T) in enumerate([(4, 2, 3), (8, 1, 6)])],
)
