"""The check library of 08_positional_encoding judges in-process targets: right
code passes every check, each known mistake fails with a message that names it."""
import math

import pytest
import torch
from torch import nn

from autograder.checks import run
from autograder.checks import positional_encoding as pe_checks


def pe_function(kind="ok"):
    def pe(max_len, d_model, base=10000.0):
        if d_model % 2:
            raise ValueError(f"d_model must be even, got {d_model}")
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]
        exponent = {"i_over_d": torch.arange(d_model // 2) / d_model}.get(
            kind, torch.arange(0, d_model, 2) / d_model)
        a = pos / base ** exponent
        if kind == "concatenated":
            return torch.cat([torch.sin(a), torch.cos(a)], dim=-1)
        out = torch.zeros(max_len, d_model)
        sin, cos = (torch.cos, torch.sin) if kind == "swapped" else (torch.sin, torch.cos)
        out[:, 0::2] = sin(a)
        if kind == "column_exponent":
            a = pos / base ** (torch.arange(1, d_model, 2) / d_model)
        out[:, 1::2] = cos(a)
        return out
    return pe


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_len=5000, dropout=0.0, kind="ok"):
        super().__init__()
        self.kind = kind
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", pe_function()(max_len, d_model))

    def forward(self, x):
        T = x.shape[1]
        if T > self.pe.shape[0]:
            raise ValueError(f"T={T} is longer than max_len={self.pe.shape[0]}")
        pe = {"not_sliced": self.pe, "by_batch": self.pe[: x.shape[0]]}.get(self.kind, self.pe[:T])
        if self.kind == "scaled_inside":
            x = x * math.sqrt(x.shape[-1])
        return self.dropout(x + pe)


class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model, scale=math.sqrt):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.scale = scale(d_model)

    def forward(self, ids):
        return self.embedding(ids) * self.scale


def test_correct_implementations_pass():
    run(pe_checks.pe_values, pe_function())
    run(pe_checks.positional_encoding_module, PositionalEncoding)
    run(pe_checks.token_embedding_module, TokenEmbedding)


@pytest.mark.parametrize("kind, phrase", [
    ("swapped", "sin and cos are swapped"),
    ("i_over_d", "exponent is i/d instead of 2i/d"),
    ("column_exponent", r"uses the exponent \(2i\+1\)/d"),
    ("concatenated", "concatenated as two halves"),
])
def test_pe_mistake_is_named(kind, phrase):
    with pytest.raises(AssertionError, match=phrase):
        run(pe_checks.pe_values, pe_function(kind))


@pytest.mark.parametrize("kind, phrase", [
    ("not_sliced", "slice the encoding to the sequence length"),
    ("by_batch", "sliced with the batch size"),
    ("scaled_inside", "scale belongs to TokenEmbedding"),
])
def test_positional_encoding_mistake_is_named(kind, phrase):
    with pytest.raises(AssertionError, match=phrase):
        run(pe_checks.positional_encoding_module, lambda *a, **kw: PositionalEncoding(*a, **kw, kind=kind))


def test_positional_encoding_without_buffer_is_reported():
    class NoBuffer(PositionalEncoding):
        def __init__(self, d_model, max_len=5000, dropout=0.0):
            super().__init__(d_model, max_len, dropout)
            table = self.pe
            del self.pe
            self.table = table

        def forward(self, x):
            return x + self.table[: x.shape[1]]
    with pytest.raises(AssertionError, match="no parameter or buffer 'pe'"):
        run(pe_checks.positional_encoding_module, NoBuffer)


@pytest.mark.parametrize("scale, phrase", [
    (lambda d: 1.0, r"sqrt\(d_model\) scale is missing"),
    (lambda d: float(d), "multiplied by d_model"),
    (lambda d: 1 / math.sqrt(d), r"divided by sqrt\(d_model\)"),
])
def test_token_embedding_mistake_is_named(scale, phrase):
    with pytest.raises(AssertionError, match=phrase):
        run(pe_checks.token_embedding_module, lambda *a, **kw: TokenEmbedding(*a, **kw, scale=scale))


def test_reference_encoding_has_the_offset_property():
    pe = pe_checks.reference_pe(64, 32)
    assert torch.allclose(pe[5] @ pe[12], pe[40] @ pe[47], atol=1e-4)
    assert torch.allclose(pe[0], torch.tensor([0.0, 1.0] * 16))
