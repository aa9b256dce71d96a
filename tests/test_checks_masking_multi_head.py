"""The check libraries of 04_masking and 05_multi_head judge in-process targets:
right code passes every check, each known mistake fails with a message that
names it."""
import math

import pytest
import torch
from torch import nn

from autograder.checks import run
from autograder.checks import masking as mk
from autograder.checks import multi_head as mh


def esc(phrase):
    return "".join("\\" + c if c in "()[].*+?^$|{}\\" else c for c in phrase)


# ------------------------------------------------------------------ 04_masking
def causal_mask(T, kind="ok"):
    ones = torch.ones(T, T, dtype=torch.bool)
    return {"ok": ones.tril(), "inverted": ones.triu(1), "no_diagonal": ~ones.triu(0),
            "float": ones.tril().float()}[kind]


def padding_mask(kind="ok"):
    def mask(lengths, max_len):
        m = torch.arange(max_len) < lengths[:, None]
        return {"ok": m[:, None], "inverted": ~m[:, None], "flat": m}[kind]
    return mask


def masked_softmax(kind="ok"):
    def softmax(scores, mask, dim=-1):
        if kind == "after_softmax":
            return torch.softmax(scores, dim=dim) * mask
        fill = {"fill_zero": 0.0, "large_negative": -1e9}.get(kind, float("-inf"))
        blocked = mask if kind == "inverted" else ~mask
        w = torch.softmax(scores.masked_fill(blocked, fill), dim=dim)
        return w if kind in ("nan", "inverted") else w.nan_to_num(0.0)
    return softmax


def sdpa(kind="ok"):
    def attention(queries, keys, values, mask=None):
        scores = queries @ keys.transpose(-2, -1) / math.sqrt(keys.shape[-1])
        w = torch.softmax(scores, -1) if mask is None else masked_softmax(kind)(scores, mask)
        return w @ values, w
    return attention


class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout=0.0, qkv_bias=False, kind="ok"):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.p = dropout
        self.kind = kind
        ones = torch.ones(context_length, context_length, dtype=torch.bool)
        self.register_buffer("mask", ones.tril(-1) if kind == "no_diagonal" else ones.tril())

    def forward(self, x):
        T = x.shape[-2]
        q, k, v = self.W_query(x), self.W_key(x), self.W_value(x)
        scores = q @ k.transpose(-2, -1) / math.sqrt(k.shape[-1])
        if self.kind == "no_mask":
            w = torch.softmax(scores, -1)
        else:
            w = masked_softmax("nan" if self.kind == "no_diagonal" else self.kind)(scores, self.mask[:T, :T])
        if self.kind == "dropout_in_eval":
            w = nn.functional.dropout(w, self.p)
        else:
            w = self.dropout(w)
        return w @ v


def causal(kind):
    return lambda *a, **kw: CausalAttention(*a, **kw, kind=kind)


def test_correct_masking_passes_every_check():
    run(mk.causal_mask_values, causal_mask)
    run(mk.padding_mask_values, padding_mask())
    run(mk.masked_softmax_values, masked_softmax())
    run(mk.masked_softmax_fully_masked, masked_softmax())
    run(mk.sdpa_masked_matches_builtin, sdpa())
    run(mk.sdpa_masked_fully_masked, sdpa())
    for check in (mk.causal_attention_matches_reference, mk.causal_attention_no_future,
                  mk.causal_attention_dropout):
        run(check, CausalAttention)
    run(mk.causal_attention_buffer, lambda *a, **kw: CausalAttention(*a, **kw).mask)


@pytest.mark.parametrize("kind, phrase", [("inverted", "inverted mask polarity"),
                                          ("no_diagonal", "a token cannot see itself")])
def test_causal_mask_mistake_is_named(kind, phrase):
    with pytest.raises(AssertionError, match=phrase):
        run(mk.causal_mask_values, lambda T: causal_mask(T, kind))


def test_float_causal_mask_is_reported_by_dtype():
    with pytest.raises(AssertionError, match="torch.bool"):
        run(mk.causal_mask_values, lambda T: causal_mask(T, "float"))


@pytest.mark.parametrize("kind, phrase", [("inverted", "inverted mask polarity"),
                                          ("flat", "add the query axis")])
def test_padding_mask_mistake_is_named(kind, phrase):
    with pytest.raises(AssertionError, match=phrase):
        run(mk.padding_mask_values, padding_mask(kind))


@pytest.mark.parametrize("kind, phrase", [
    ("inverted", "inverted mask polarity"),
    ("fill_zero", "filled with 0 instead of -inf"),
    ("after_softmax", "after the softmax without renormalising"),
])
def test_masked_softmax_mistake_is_named(kind, phrase):
    with pytest.raises(AssertionError, match=esc(phrase)):
        run(mk.masked_softmax_values, masked_softmax(kind))
    with pytest.raises(AssertionError, match=esc(phrase)):
        run(mk.sdpa_masked_matches_builtin, sdpa(kind))


@pytest.mark.parametrize("kind, phrase", [("nan", "fully masked row gives NaN"),
                                          ("large_negative", "fully masked row gets uniform weights")])
def test_fully_masked_row_mistake_is_named(kind, phrase):
    run(mk.masked_softmax_values, masked_softmax(kind))  # no fully masked row there
    with pytest.raises(AssertionError, match=phrase):
        run(mk.masked_softmax_fully_masked, masked_softmax(kind))
    with pytest.raises(AssertionError, match=phrase):
        run(mk.sdpa_masked_fully_masked, sdpa(kind))


@pytest.mark.parametrize("kind, check, phrase", [
    ("inverted", "causal_attention_matches_reference", "inverted mask polarity"),
    ("no_diagonal", "causal_attention_matches_reference", "a token cannot see itself"),
    ("fill_zero", "causal_attention_matches_reference", "instead of -inf"),
    ("after_softmax", "causal_attention_matches_reference", "without renormalising"),
    ("no_mask", "causal_attention_no_future", "the future is not masked"),
    ("fill_zero", "causal_attention_no_future", "instead of -inf"),
    ("dropout_in_eval", "causal_attention_dropout", "dropout is active in eval mode"),
])
def test_causal_attention_mistake_is_named(kind, check, phrase):
    with pytest.raises(AssertionError, match=esc(phrase)):
        run(getattr(mk, check), causal(kind))


def test_causal_attention_without_dropout_in_training_is_named():
    class NoDropout(CausalAttention):
        def __init__(self, d_in, d_out, context_length, dropout=0.0, qkv_bias=False):
            super().__init__(d_in, d_out, context_length, 0.0, qkv_bias)
    with pytest.raises(AssertionError, match="dropout is never applied"):
        run(mk.causal_attention_dropout, NoDropout)


def test_causal_attention_with_unsliced_mask_gets_a_hint():
    class Unsliced(CausalAttention):
        def forward(self, x):
            q, k, v = self.W_query(x), self.W_key(x), self.W_value(x)
            w = masked_softmax()(q @ k.transpose(-2, -1) / math.sqrt(k.shape[-1]), self.mask)
            return w @ v
    with pytest.raises(AssertionError, match=esc("self.mask[:T, :T]")):
        run(mk.causal_attention_matches_reference, Unsliced)


def test_causal_attention_buffer_mistakes():
    with pytest.raises(AssertionError, match="a token cannot see itself"):
        run(mk.causal_attention_buffer, lambda *a, **kw: causal("no_diagonal")(*a, **kw).mask)
    with pytest.raises(AssertionError, match="torch.bool"):
        run(mk.causal_attention_buffer, lambda *a, **kw: CausalAttention(*a, **kw).mask.float())


# ------------------------------------------------------------------ 05_multi_head
def split_heads(x, num_heads, kind="ok"):
    B, T, d = x.shape
    if d % num_heads:
        raise ValueError("num_heads must divide d_model")
    if kind == "view_only":
        return x.view(B, num_heads, T, d // num_heads)
    return x.view(B, T, num_heads, d // num_heads).transpose(1, 2)


def merge_heads(x, kind="ok"):
    B, h, T, d = x.shape
    if kind == "no_transpose":
        return x.reshape(B, T, h * d)
    return x.transpose(1, 2).reshape(B, T, h * d)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, dropout=0.0, bias=True, kind="ok"):
        super().__init__()
        self.h, self.kind = num_heads, kind
        self.W_q = nn.Linear(d_model, d_model, bias=bias)
        self.W_k = nn.Linear(d_model, d_model, bias=bias)
        self.W_v = nn.Linear(d_model, d_model, bias=bias)
        self.W_o = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query, key, value, mask=None):
        split = "view_only" if self.kind == "split_view_only" else "ok"
        q = split_heads(self.W_q(query), self.h, split)
        k = split_heads(self.W_k(key), self.h, split)
        v = split_heads(self.W_v(value), self.h, split)
        d = q.shape[-1] * self.h if self.kind == "sqrt_d_model" else q.shape[-1]
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)
        if mask is not None:
            if mask.dim() == 3 and self.kind != "mask_no_head_axis":
                mask = mask.unsqueeze(1)
            scores = scores.masked_fill(~mask, float("-inf"))
        w = torch.softmax(scores, dim=-1)
        out = merge_heads(self.dropout(w) @ v, "no_transpose" if self.kind == "merge_no_transpose" else "ok")
        return (out if self.kind == "no_w_o" else self.W_o(out)), w


def mha(kind):
    return lambda *a, **kw: MultiHeadAttention(*a, **kw, kind=kind)


def test_correct_multi_head_passes_every_check():
    run(mh.split_heads_values, split_heads)
    run(mh.merge_heads_values, merge_heads)
    for check in (mh.mha_matches_builtin, mh.mha_masks, mh.mha_one_head):
        run(check, MultiHeadAttention)


@pytest.mark.parametrize("error, phrase", [
    (None, "returned a result: it must raise ValueError"),
    (RuntimeError("shape '[2, 3, 4, 2]' is invalid"), r"raised RuntimeError.*expected ValueError"),
    (ValueError("cannot split"), "message should name num_heads"),
])
def test_indivisible_num_heads_must_raise_a_value_error_naming_it(error, phrase):
    def split(x, num_heads):
        if x.shape[-1] % num_heads == 0:
            return split_heads(x, num_heads)
        if error is None:
            return x
        raise error
    with pytest.raises(AssertionError, match=phrase):
        run(mh.split_heads_values, split)


def test_split_and_merge_mistakes_are_named():
    with pytest.raises(AssertionError, match="without transpose"):
        run(mh.split_heads_values, lambda x, num_heads: split_heads(x, num_heads, "view_only"))
    with pytest.raises(AssertionError, match="merged without transpose"):
        run(mh.merge_heads_values, lambda x: merge_heads(x, "no_transpose"))
    with pytest.raises(AssertionError, match="not contiguous"):
        run(mh.merge_heads_values, lambda x: x.transpose(1, 2).view(x.shape[0], x.shape[2], -1))


@pytest.mark.parametrize("kind, check, phrase", [
    ("split_view_only", "mha_matches_builtin", "split with view/reshape alone, without transpose"),
    ("merge_no_transpose", "mha_matches_builtin", "merged without transpose"),
    ("sqrt_d_model", "mha_matches_builtin", "divided by sqrt(d_model)"),
    ("no_w_o", "mha_matches_builtin", "output projection W_o is missing"),
    ("mask_no_head_axis", "mha_masks", "not broadcast over the heads"),
    ("no_w_o", "mha_one_head", "output projection W_o is missing"),
])
def test_multi_head_mistake_is_named(kind, check, phrase):
    run(mh.mha_matches_builtin if kind == "mask_no_head_axis" else mh.split_heads_values,
        MultiHeadAttention if kind == "mask_no_head_axis" else split_heads)
    with pytest.raises(AssertionError, match=esc(phrase)):
        run(getattr(mh, check), mha(kind))
