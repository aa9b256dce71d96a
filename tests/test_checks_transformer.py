"""The 10_transformer checks judge in-process targets: the right decoder layer and
model pass, each known mistake fails with a message that names it."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks import run
from autograder.checks import transformer as tr
from autograder.checks.positional_encoding import reference_pe


class MultiHeadAttention(nn.Module):
    """Chapter 5's module (mask True = may attend), as given in the notebook."""

    def __init__(self, d_model, num_heads, dropout=0.0, bias=True):
        super().__init__()
        self.d_model, self.num_heads, self.d_k = d_model, num_heads, d_model // num_heads
        self.W_q, self.W_k, self.W_v, self.W_o = (nn.Linear(d_model, d_model, bias=bias) for _ in range(4))
        self.dropout = nn.Dropout(dropout)

    def forward(self, query, key, value, mask=None):
        B, t_q, t_k, h = query.shape[0], query.shape[1], key.shape[1], self.num_heads
        q = self.W_q(query).view(B, t_q, h, self.d_k).transpose(1, 2)
        k = self.W_k(key).view(B, t_k, h, self.d_k).transpose(1, 2)
        v = self.W_v(value).view(B, t_k, h, self.d_k).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_k)
        if mask is not None:
            mask = mask.unsqueeze(1) if mask.dim() == 3 else mask
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        if mask is not None:
            weights = weights.masked_fill(~mask, 0.0)
        context = (self.dropout(weights) @ v).transpose(1, 2).reshape(B, t_q, self.d_model)
        return self.W_o(context), weights


class EncoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, dim_feedforward, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.linear1, self.linear2 = nn.Linear(d_model, dim_feedforward), nn.Linear(dim_feedforward, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, padding_mask=None):
        mask = None if padding_mask is None else padding_mask[:, None, :]
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, mask)[0]))
        return self.norm2(x + self.dropout(self.linear2(F.relu(self.linear1(x)))))


def decoder_layer(kv_from_decoder=False, ignore_tgt_mask=False, pytorch_masks=False, pre_ln=False,
                  no_residual=False, cross_name="multihead_attn"):
    """A TransformerDecoderLayer class, right by default, with one mistake per flag."""
    class Layer(nn.Module):
        def __init__(self, d_model, num_heads, dim_feedforward, dropout=0.1):
            super().__init__()
            self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
            setattr(self, cross_name, MultiHeadAttention(d_model, num_heads, dropout))
            self.linear1, self.linear2 = nn.Linear(d_model, dim_feedforward), nn.Linear(dim_feedforward, d_model)
            self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
            self.dropout = nn.Dropout(dropout)

        def _wrap(self, x, norm, sublayer):
            if pre_ln:
                return x + self.dropout(sublayer(norm(x)))
            return norm(self.dropout(sublayer(x)) if no_residual else x + self.dropout(sublayer(x)))

        def forward(self, tgt, memory, tgt_mask=None, memory_mask=None):
            if pytorch_masks:
                tgt_mask = None if tgt_mask is None else ~tgt_mask
                memory_mask = None if memory_mask is None else ~memory_mask
            if ignore_tgt_mask:
                tgt_mask = None
            cross = getattr(self, cross_name)
            kv = (lambda x: x) if kv_from_decoder else (lambda x: memory)
            x = self._wrap(tgt, self.norm1, lambda x: self.self_attn(x, x, x, tgt_mask)[0])
            x = self._wrap(x, self.norm2, lambda x: cross(x, kv(x), kv(x), memory_mask)[0])
            return self._wrap(x, self.norm3, lambda x: self.linear2(self.dropout(F.relu(self.linear1(x)))))
    return Layer


def transformer(layer=None, no_causal=False, tie="share", ignore_padding=False):
    """A tiny Transformer class; tie is "share" (right), "copy" or "none"."""
    layer = layer or decoder_layer()

    class Model(nn.Module):
        def __init__(self, vocab_size, d_model, num_heads, num_layers, dim_feedforward, dropout=0.1, max_len=64):
            super().__init__()
            self.d_model = d_model
            self.embedding = nn.Embedding(vocab_size, d_model)
            nn.init.normal_(self.embedding.weight, std=d_model ** -0.5)
            self.register_buffer("pe", reference_pe(max_len, d_model), persistent=False)
            self.encoder_layers = nn.ModuleList(EncoderLayer(d_model, num_heads, dim_feedforward, dropout)
                                                for _ in range(num_layers))
            self.decoder_layers = nn.ModuleList(layer(d_model, num_heads, dim_feedforward, dropout)
                                                for _ in range(num_layers))
            self.out_proj = nn.Linear(d_model, vocab_size, bias=False)
            if tie == "share":
                self.out_proj.weight = self.embedding.weight
            elif tie == "copy":
                self.out_proj.weight = nn.Parameter(self.embedding.weight.detach().clone())

        def embed(self, ids):
            return self.embedding(ids) * math.sqrt(self.d_model) + self.pe[: ids.shape[1]]

        def forward(self, src, tgt, src_padding_mask=None):
            x = self.embed(src)
            for enc in self.encoder_layers:
                x = enc(x, src_padding_mask)
            T = tgt.shape[1]
            causal = None if no_causal else torch.ones(T, T, dtype=torch.bool).tril()
            mem_mask = None if src_padding_mask is None or ignore_padding else src_padding_mask[:, None, :]
            y = self.embed(tgt)
            for dec in self.decoder_layers:
                y = dec(y, x, tgt_mask=causal, memory_mask=mem_mask)
            return self.out_proj(y)
    return Model


DECODER_CHECKS = (tr.decoder_output_shape, tr.decoder_matches_builtin, tr.decoder_cross_attention, tr.decoder_causal)


def test_correct_decoder_layer_passes_every_check():
    for check in DECODER_CHECKS:
        run(check, decoder_layer())


def test_cross_attn_is_accepted_as_a_name_for_the_cross_attention():
    run(tr.decoder_matches_builtin, decoder_layer(cross_name="cross_attn"))


def test_correct_model_passes_every_check():
    model = transformer()
    run(tr.transformer_matches_reference, model)
    run(tr.transformer_causal, model)
    run(tr.weight_tying, tr.tying_probe(model))


@pytest.mark.parametrize("check, wrong, phrase", [
    (tr.decoder_matches_builtin, decoder_layer(kv_from_decoder=True), "keys and values from the decoder's own state"),
    (tr.decoder_cross_attention, decoder_layer(kv_from_decoder=True), "keys and values from the decoder's own state"),
    (tr.decoder_causal, decoder_layer(ignore_tgt_mask=True), "missing causal mask"),
    (tr.decoder_causal, decoder_layer(pytorch_masks=True), "masks are inverted"),
    (tr.decoder_matches_builtin, decoder_layer(pre_ln=True), "pre-LN"),
    (tr.decoder_matches_builtin, decoder_layer(no_residual=True), "residual connection is missing"),
])
def test_decoder_mistake_is_named(check, wrong, phrase):
    with pytest.raises(AssertionError, match=phrase):
        run(check, wrong)


def test_model_without_causal_mask_is_named_by_both_model_checks():
    for check in (tr.transformer_causal, tr.transformer_matches_reference):
        with pytest.raises(AssertionError, match="no causal mask"):
            run(check, transformer(no_causal=True))


def test_decoder_layer_ignoring_its_mask_breaks_the_model_causality():
    with pytest.raises(AssertionError, match="no causal mask"):
        run(tr.transformer_causal, transformer(layer=decoder_layer(ignore_tgt_mask=True)))


def test_copied_instead_of_shared_weights_is_named():
    model = transformer(tie="copy")
    with pytest.raises(AssertionError, match="a copy of the embedding weights, not the same tensor"):
        run(tr.weight_tying, tr.tying_probe(model))
    # The drawn state gives the copy values of its own, so the logits show it too.
    with pytest.raises(AssertionError, match="must share the embedding's weight"):
        run(tr.transformer_matches_reference, model)


def test_untied_output_projection_is_named():
    model = transformer(tie="none")
    with pytest.raises(AssertionError, match="is not tied to the embedding"):
        run(tr.weight_tying, tr.tying_probe(model))
    with pytest.raises(AssertionError, match="do not come from the embedding matrix"):
        run(tr.transformer_matches_reference, model)


def test_padding_ignored_by_the_cross_attention_is_named():
    with pytest.raises(AssertionError, match="ignores src_padding_mask"):
        run(tr.transformer_matches_reference, transformer(ignore_padding=True))


def test_undefined_or_incomplete_model_is_reported():
    with pytest.raises(AssertionError, match="not defined"):
        run(tr.weight_tying, tr.tying_probe(None))

    class NoHead(nn.Module):
        def __init__(self, **kwargs):
            super().__init__()
            self.embedding = nn.Embedding(kwargs["vocab_size"], kwargs["d_model"])
    with pytest.raises(AssertionError, match="out_proj"):
        run(tr.weight_tying, tr.tying_probe(NoHead))
