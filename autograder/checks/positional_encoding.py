"""Checks for assignment 08_positional_encoding (COURSE_SPEC.md).

The reference encoding is computed here in float64 from the definition of
Vaswani et al. (2017, sec. 3.5), PE[p, 2i] = sin(p / base^(2i/d)) and
PE[p, 2i+1] = cos(p / base^(2i/d)), then cast to float32.  ``PositionalEncoding``
is judged against ``x + PE[:T]`` (dropout is inactive in eval mode) and
``TokenEmbedding`` against ``F.embedding(ids, weight) * sqrt(d_model)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .core import Case, Check, Mistake


def _angles(max_len, d_model, base, exponent):
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    return pos / base ** exponent(d_model)[None, :]


def _pair_exponent(d_model):
    """2i/d for the pair index i = 0 .. d/2 - 1."""
    return torch.arange(0, d_model, 2, dtype=torch.float64) / d_model


def reference_pe(max_len, d_model, base=10000.0):
    """[max_len, d_model] float32: sin on even columns, cos on odd ones."""
    a = _angles(max_len, d_model, base, _pair_exponent)
    pe = torch.empty(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(a)
    pe[:, 1::2] = torch.cos(a)
    return pe.float()


def _swapped(max_len, d_model, base=10000.0):
    a = _angles(max_len, d_model, base, _pair_exponent)
    pe = torch.empty(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.cos(a)
    pe[:, 1::2] = torch.sin(a)
    return pe.float()


def _exponent_i_over_d(max_len, d_model, base=10000.0):
    a = _angles(max_len, d_model, base, lambda d: torch.arange(d // 2, dtype=torch.float64) / d)
    pe = torch.empty(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(a)
    pe[:, 1::2] = torch.cos(a)
    return pe.float()


def _column_exponent(max_len, d_model, base=10000.0):
    """Exponent j/d with j the column itself, so cos columns use (2i+1)/d."""
    a = _angles(max_len, d_model, base, lambda d: torch.arange(d, dtype=torch.float64) / d)
    pe = torch.empty(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(a[:, 0::2])
    pe[:, 1::2] = torch.cos(a[:, 1::2])
    return pe.float()


def _concatenated(max_len, d_model, base=10000.0):
    a = _angles(max_len, d_model, base, _pair_exponent)
    return torch.cat([torch.sin(a), torch.cos(a)], dim=-1).float()


SWAPPED = ("sin and cos are swapped: the even columns 0, 2, 4, ... hold sin(p / base^(2i/d)) "
           "and the odd columns hold cos (so row 0 is [0, 1, 0, 1, ...])")
I_OVER_D = ("the exponent is i/d instead of 2i/d: the frequency of pair i is "
            "1 / base^(2i/d_model), with 2i the index of the even column")
COLUMN_EXPONENT = ("the cos column 2i+1 uses the exponent (2i+1)/d: both columns of a pair "
                   "share the frequency 1 / base^(2i/d_model)")
CONCATENATED = ("the sines and cosines are concatenated as two halves [sin | cos]; they must "
                "be interleaved: pe[:, 0::2] = sin(...), pe[:, 1::2] = cos(...)")

PE_MISTAKES = (
    Mistake("sin_cos_swapped", _swapped, SWAPPED),
    Mistake("exponent_i_over_d", _exponent_i_over_d, I_OVER_D),
    Mistake("column_exponent", _column_exponent, COLUMN_EXPONENT),
    Mistake("concatenated_halves", _concatenated, CONCATENATED),
)

pe_values = Check(
    name="pe_values",
    target="sinusoidal_positional_encoding",
    cases=[Case(name=f"max_len={n}, d_model={d}" + (f", base={b}" if b != 10000.0 else ""),
                inputs=lambda g, n=n, d=d, b=b: dict(max_len=n, d_model=d, base=b),
                reference=reference_pe, mistakes=PE_MISTAKES, atol=1e-4, rtol=1e-4)
           for n, d, b in [(6, 4, 10000.0), (50, 16, 10000.0), (20, 10, 10000.0), (12, 8, 100.0), (1, 2, 10000.0)]],
)

pe_first_rows = Check(
    name="pe_first_rows",
    target="sinusoidal_positional_encoding",
    cases=[Case(name=f"max_len={n}, d_model={d}", inputs=lambda g, n=n, d=d: dict(max_len=n, d_model=d),
                reference=reference_pe, mistakes=PE_MISTAKES, atol=1e-4, rtol=1e-4)
           for n, d in [(2, 2), (3, 6), (4, 12)]]
    + [Case(name=f"max_len=10, odd d_model={d}", inputs=lambda g, d=d: dict(max_len=10, d_model=d),
            reference=None, raises="ValueError", error_names="d_model") for d in (5, 7)],
)


def _pe_module_reference(max_len, d_model):
    pe = reference_pe(max_len, d_model)

    def output(state, x):
        state["pe"]  # the encoding must be a registered buffer named pe
        return x + pe[: x.shape[1]]
    return output


def _pe_by_batch(max_len, d_model):
    pe = reference_pe(max_len, d_model)
    return lambda state, x: x + pe[: x.shape[0]]


def _pe_twice_scaled(max_len, d_model):
    pe = reference_pe(max_len, d_model)
    return lambda state, x: x * math.sqrt(d_model) + pe[: x.shape[1]]


NOT_SLICED = ("Did you slice the encoding to the sequence length? x has shape [B, T, d_model] "
              "and the buffer [max_len, d_model]: add pe[:T] with T = x.shape[1]")


def _pe_module_case(name, d_model, max_len, B, T, seed, dropout=0.0):
    init = dict(d_model=d_model, max_len=max_len)
    if dropout:
        init["dropout"] = dropout
    return Case(
        name=name, init=init, init_seed=seed, seed=seed,
        inputs=lambda g: dict(x=torch.randn(B, T, d_model, generator=g)),
        reference=_pe_module_reference(max_len, d_model),
        mistakes=(Mistake("sliced_by_batch", _pe_by_batch(max_len, d_model),
                          "the encoding is sliced with the batch size x.shape[0]; slice it "
                          "with the sequence length T = x.shape[1]"),
                  Mistake("scaled_inside", _pe_twice_scaled(max_len, d_model),
                          "x is multiplied by sqrt(d_model) inside PositionalEncoding; that "
                          "scale belongs to TokenEmbedding, here the output is dropout(x + pe[:T])")),
        hint_on_error=NOT_SLICED, atol=1e-4, rtol=1e-4)


positional_encoding_module = Check(
    name="positional_encoding_module",
    target="PositionalEncoding",
    kind="module",
    cases=[
        _pe_module_case("d_model=16, max_len=64, B=1, T=9", 16, 64, 1, 9, 801),
        _pe_module_case("d_model=8, max_len=20, B=2, T=5", 8, 20, 2, 5, 800),
        _pe_module_case("d_model=6, max_len=7, B=3, T=7 (T = max_len)", 6, 7, 3, 7, 802),
        _pe_module_case("dropout=0.5 in eval mode, d_model=4, max_len=30, B=2, T=3", 4, 30, 2, 3, 803, dropout=0.5),
        Case(name="T=51 > max_len=50", init=dict(d_model=8, max_len=50), init_seed=804, seed=804,
             inputs=lambda g: dict(x=torch.randn(1, 51, 8, generator=g)), reference=None,
             raises="ValueError", error_names="max_len"),
    ],
)


def _embedding(scale_of):
    def output(state, ids):
        w = state["embedding.weight"]
        return F.embedding(ids, w) * scale_of(w.shape[1])
    return output


EMBEDDING_MISTAKES = (
    Mistake("no_scale", _embedding(lambda d: 1.0),
            "the sqrt(d_model) scale is missing: return embedding(ids) * sqrt(d_model)"),
    Mistake("scale_by_d", _embedding(lambda d: float(d)),
            "the embeddings are multiplied by d_model; multiply by sqrt(d_model)"),
    Mistake("divided", _embedding(lambda d: 1 / math.sqrt(d)),
            "the embeddings are divided by sqrt(d_model); multiply by it"),
)

token_embedding_module = Check(
    name="token_embedding_module",
    target="TokenEmbedding",
    kind="module",
    cases=[Case(name=f"vocab_size={v}, d_model={d}, ids {list(shape)}", init=dict(vocab_size=v, d_model=d),
                init_seed=810 + i, seed=810 + i,
                inputs=lambda g, v=v, shape=shape: dict(ids=torch.randint(0, v, shape, generator=g)),
                reference=_embedding(math.sqrt), mistakes=EMBEDDING_MISTAKES)
           for i, (v, d, shape) in enumerate([(10, 4, (2, 5)), (50, 16, (3, 7)), (7, 64, (9,))])],
)
