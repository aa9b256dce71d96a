"""Checks for assignment 10_transformer (COURSE_SPEC.md).

``TransformerDecoderLayer`` is compared with ``nn.TransformerDecoderLayer(d_model,
num_heads, dim_feedforward, batch_first=True, norm_first=False)`` holding the
learner's weights (``in_proj_weight = cat(W_q, W_k, W_v)`` of ``self_attn`` and
of ``multihead_attn``, the cross-attention), in eval mode; our masks (True = may
attend) become PyTorch's (True = blocked) by ``~``.  The tiny ``Transformer`` is
compared with a reference assembled from ``nn.TransformerEncoderLayer`` and
``nn.TransformerDecoderLayer`` with its weights and the embedding matrix as the
output projection (Vaswani et al. 2017, sec. 3.1-3.4; Press and Wolf 2017).
Properties: changing future target tokens leaves earlier outputs unchanged, and
the output projection's weight *is* the embedding's weight.

Known mistakes are hand-written decoder layers and models built from the same
state, so that a mismatch is reported as the mistake it most likely is.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import masks
from .core import Case, Check, Mistake, put
from .multi_head import copy_into_builtin
from .positional_encoding import reference_pe

CROSS = "multihead_attn"  # nn.TransformerDecoderLayer's name for the cross-attention


def _cross_prefix(state, prefix=""):
    """``multihead_attn`` (PyTorch's name), or ``cross_attn`` if the learner used that."""
    if f"{prefix}{CROSS}.W_q.weight" not in state and f"{prefix}cross_attn.W_q.weight" in state:
        return "cross_attn"
    return CROSS


# ---------------------------------------------------------------- reference decoder layer
def _copy_common(layer, state, prefix, norms):
    for name in ("linear1", "linear2") + norms:
        put(layer, f"{name}.weight", state[f"{prefix}{name}.weight"])
        put(layer, f"{name}.bias", state[f"{prefix}{name}.bias"])


def builtin_decoder_layer(state, num_heads, prefix="", activation="relu"):
    """nn.TransformerDecoderLayer (post-LN, relu, batch_first) with the learner's weights."""
    d_model = state[f"{prefix}norm1.weight"].shape[0]
    dff = state[f"{prefix}linear1.weight"].shape[0]
    layer = nn.TransformerDecoderLayer(d_model, num_heads, dff, dropout=0.0, activation=activation,
                                       batch_first=True, norm_first=False)
    copy_into_builtin(layer.self_attn, state, f"{prefix}self_attn")
    copy_into_builtin(layer.multihead_attn, state, prefix + _cross_prefix(state, prefix))
    _copy_common(layer, state, prefix, ("norm1", "norm2", "norm3"))
    return layer.eval()


def builtin_encoder_layer(state, num_heads, prefix=""):
    """nn.TransformerEncoderLayer (post-LN, relu, batch_first) with the given layer's weights."""
    d_model = state[f"{prefix}norm1.weight"].shape[0]
    dff = state[f"{prefix}linear1.weight"].shape[0]
    layer = nn.TransformerEncoderLayer(d_model, num_heads, dff, dropout=0.0, batch_first=True, norm_first=False)
    copy_into_builtin(layer.self_attn, state, f"{prefix}self_attn")
    _copy_common(layer, state, prefix, ("norm1", "norm2"))
    return layer.eval()


def _blocked(mask, num_heads):
    """Our mask (True = attend), [T_q, T_k] or [B, T_q, T_k], as PyTorch's attn_mask (True = blocked)."""
    if mask is None:
        return None
    return ~mask if mask.dim() == 2 else (~mask).repeat_interleave(num_heads, dim=0)


def _memory_masks(memory_mask, num_heads, t_q):
    """(memory_mask, memory_key_padding_mask) for PyTorch from ours."""
    if memory_mask is None:
        return None, None
    if memory_mask.dim() == 3 and memory_mask.shape[1] == 1:
        return None, ~memory_mask[:, 0, :]
    return _blocked(memory_mask, num_heads), None


def reference_decoder_layer(num_heads):
    """The reference: nn.TransformerDecoderLayer with the learner's state (eval mode)."""
    def output(state, tgt, memory, tgt_mask=None, memory_mask=None):
        layer = builtin_decoder_layer(state, num_heads)
        m_mask, m_padding = _memory_masks(memory_mask, num_heads, tgt.shape[1])
        # enable_grad keeps PyTorch on its plain (non fast-path) code, the one documented
        with torch.enable_grad():
            out = layer(tgt, memory, tgt_mask=_blocked(tgt_mask, num_heads), memory_mask=m_mask,
                        memory_key_padding_mask=m_padding)
        return out
    return output


# ---------------------------------------------------------------- hand-written variants
def _mha(state, prefix, num_heads, query, key, value, mask=None):
    def proj(n, x):
        return F.linear(x, state[f"{prefix}.W_{n}.weight"], state[f"{prefix}.W_{n}.bias"])
    B, t_q, t_k, d = query.shape[0], query.shape[1], key.shape[1], query.shape[2]
    d_k = d // num_heads
    q = proj("q", query).view(B, t_q, num_heads, d_k).transpose(1, 2)
    k = proj("k", key).view(B, t_k, num_heads, d_k).transpose(1, 2)
    v = proj("v", value).view(B, t_k, num_heads, d_k).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)
    if mask is not None:
        mask = mask.unsqueeze(1) if mask.dim() == 3 else mask
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)
    return proj("o", (weights @ v).transpose(1, 2).reshape(B, t_q, d))


def _ln(state, name, x):
    return F.layer_norm(x, x.shape[-1:], state[f"{name}.weight"], state[f"{name}.bias"])


def manual_decoder_layer(state, num_heads, tgt, memory, tgt_mask=None, memory_mask=None, *, prefix="",
                         kv="memory", q_from_memory=False, use_tgt_mask=True, invert=False,
                         swap_masks=False, norm_first=False, residual=True,
                         norms=("norm1", "norm2", "norm3"), activation="relu"):
    """A post-LN decoder layer written out by hand; the keyword arguments make it wrong
    in one known way each (they default to the right layer)."""
    if invert:
        tgt_mask = None if tgt_mask is None else ~tgt_mask
        memory_mask = None if memory_mask is None else ~memory_mask
    if not use_tgt_mask:
        tgt_mask = None
    if swap_masks:
        tgt_mask, memory_mask = memory_mask, tgt_mask
    cross = prefix + _cross_prefix(state, prefix)

    def self_block(x):
        return _mha(state, f"{prefix}self_attn", num_heads, x, x, x, tgt_mask)

    def cross_block(x):
        if q_from_memory:
            return _mha(state, cross, num_heads, memory, x, x, memory_mask)
        source = memory if kv == "memory" else x
        return _mha(state, cross, num_heads, x, source, source, memory_mask)

    def ff_block(x):
        hidden = F.linear(x, state[f"{prefix}linear1.weight"], state[f"{prefix}linear1.bias"])
        hidden = {"relu": F.relu, "gelu": F.gelu, None: lambda h: h}[activation](hidden)
        return F.linear(hidden, state[f"{prefix}linear2.weight"], state[f"{prefix}linear2.bias"])

    x = tgt
    for block, norm in zip((self_block, cross_block, ff_block), norms):
        norm = prefix + norm
        if norm_first:
            x = x + block(_ln(state, norm, x))
        else:
            x = _ln(state, norm, (x + block(x)) if residual else block(x))
    return x


def _variant(num_heads, **kwargs):
    def output(state, tgt, memory, tgt_mask=None, memory_mask=None):
        return manual_decoder_layer(state, num_heads, tgt, memory, tgt_mask, memory_mask, **kwargs)
    return output


KV_FROM_DECODER = ("the cross-attention takes its keys and values from the decoder's own state: "
                   "queries come from the decoder, keys and values from the encoder output, "
                   "multihead_attn(x, memory, memory, memory_mask)")
Q_FROM_MEMORY = ("the cross-attention's roles are swapped: the queries must come from the "
                 "decoder (x) and the keys and values from the encoder output (memory), "
                 "multihead_attn(x, memory, memory, memory_mask)")
NO_CAUSAL = ("tgt_mask is not applied to the masked self-attention (missing causal mask): "
             "pass it as the mask of self_attn, so that no target position sees later ones")
INVERTED = ("the masks are inverted: our convention is True = may attend (like "
            "F.scaled_dot_product_attention); only nn.MultiheadAttention and "
            "nn.TransformerDecoderLayer use True = blocked")
SWAPPED_MASKS = ("the masks are swapped: tgt_mask belongs to the self-attention and "
                 "memory_mask to the cross-attention")
PRE_LN = ("the layer normalises before each sub-layer (pre-LN, norm_first=True); this layer is "
          "post-LN, as in the original Transformer: x = norm(x + sublayer(x))")
NO_RESIDUAL = ("a residual connection is missing: each sub-layer is wrapped as "
               "norm(x + sublayer(x)), not norm(sublayer(x))")
NORM_ORDER = ("the LayerNorms are used in the wrong places: norm1 follows the self-attention, "
              "norm2 the cross-attention and norm3 the feed-forward network")
NO_RELU = "the feed-forward network has no ReLU between linear1 and linear2"
GELU = ("the feed-forward network uses GELU (as BERT and GPT do); the original Transformer's decoder "
        "layer, like nn.TransformerDecoderLayer's default, uses ReLU: linear2(relu(linear1(x)))")


def _decoder_mistakes(num_heads):
    return (
        Mistake("kv_from_decoder", _variant(num_heads, kv="decoder"), KV_FROM_DECODER),
        Mistake("q_from_memory", _variant(num_heads, q_from_memory=True), Q_FROM_MEMORY),
        Mistake("no_causal_mask", _variant(num_heads, use_tgt_mask=False), NO_CAUSAL),
        Mistake("inverted_masks", _variant(num_heads, invert=True), INVERTED),
        Mistake("swapped_masks", _variant(num_heads, swap_masks=True), SWAPPED_MASKS),
        Mistake("pre_ln", _variant(num_heads, norm_first=True), PRE_LN),
        Mistake("no_residual", _variant(num_heads, residual=False), NO_RESIDUAL),
        Mistake("norm1_everywhere", _variant(num_heads, norms=("norm1",) * 3), NORM_ORDER),
        Mistake("norms_reversed", _variant(num_heads, norms=("norm3", "norm2", "norm1")), NORM_ORDER),
        Mistake("no_relu", _variant(num_heads, activation=None), NO_RELU),
        Mistake("gelu", _variant(num_heads, activation="gelu"), GELU),
    )


CROSS_HINT = ("If this is a shape error between a mask and the scores, check that the "
              "cross-attention takes its keys and values from memory [B, S, d_model] (the "
              "encoder output) and its queries from the decoder [B, T, d_model], and that "
              "tgt_mask [T, T] goes to the self-attention, memory_mask to the cross-attention.")


def _decoder_inputs(B, T, S, d, tgt_mask_of=None, memory_mask_of=None):
    def inputs(g):
        out = dict(tgt=torch.randn(B, T, d, generator=g), memory=torch.randn(B, S, d, generator=g))
        if tgt_mask_of is not None:
            out["tgt_mask"] = tgt_mask_of(g)
        if memory_mask_of is not None:
            out["memory_mask"] = memory_mask_of(g)
        return out
    return inputs


def _decoder_case(name, d, h, ff, B, T, S, seed, dropout=0.1, tgt_mask_of=None, memory_mask_of=None):
    return Case(name=name, inputs=_decoder_inputs(B, T, S, d, tgt_mask_of, memory_mask_of),
                init=dict(d_model=d, num_heads=h, dim_feedforward=ff, dropout=dropout),
                init_seed=seed, seed=seed, reference=reference_decoder_layer(h),
                mistakes=_decoder_mistakes(h), hint_on_error=CROSS_HINT)


def _shape_case(name, d, h, B, T, S, seed):
    return Case(name=name, inputs=_decoder_inputs(B, T, S, d), init=dict(d_model=d, num_heads=h, dim_feedforward=2 * d),
                init_seed=seed, seed=seed, outputs=("output shape",), atol=0.0, rtol=0.0,
                reference=lambda state, tgt, memory: torch.tensor(tgt.shape, dtype=torch.float32),
                measure=lambda out, inputs: torch.tensor(out[0].shape, dtype=torch.float32),
                mistakes=(Mistake("q_from_memory", _variant(h, q_from_memory=True), Q_FROM_MEMORY),),
                hint_on_error=CROSS_HINT)


decoder_output_shape = Check(
    name="decoder_output_shape",
    target="TransformerDecoderLayer",
    kind="module",
    cases=[_shape_case("B=2, T=5 target positions, S=7 memory positions, d_model=8", 8, 2, 2, 5, 7, 990),
           _shape_case("B=1, T=3, S=1, d_model=12, 3 heads", 12, 3, 1, 3, 1, 991)],
)


decoder_matches_builtin = Check(
    name="decoder_matches_builtin",
    target="TransformerDecoderLayer",
    kind="module",
    cases=[
        _decoder_case("no masks, d_model=8, 2 heads, dim_feedforward=16, B=2, T=S=5", 8, 2, 16, 2, 5, 5, 1000),
        _decoder_case("no masks, d_model=12, 3 heads, dim_feedforward=24, B=2, T=4, S=7", 12, 3, 24, 2, 4, 7, 1001),
        _decoder_case("no masks, dropout=0.3 in eval mode, d_model=16, 4 heads, B=1, T=6, S=3",
                      16, 4, 32, 1, 6, 3, 1002, dropout=0.3),
    ],
)

decoder_cross_attention = Check(
    name="decoder_cross_attention",
    target="TransformerDecoderLayer",
    kind="module",
    cases=[
        _decoder_case("T=3 target positions, S=6 memory positions, no masks", 8, 2, 16, 2, 3, 6, 1010),
        _decoder_case("one memory position (S=1)", 8, 2, 16, 3, 4, 1, 1011),
        _decoder_case("padding mask on the memory, memory_mask [3, 1, 6]", 12, 3, 24, 3, 4, 6, 1012,
                      memory_mask_of=masks.padding([6, 2, 4], 6)),
    ],
)


def _future_edit_inputs(B, T, S, d, edit_from, with_memory_mask=False):
    """Two examples with the same memory whose targets agree before ``edit_from``."""
    def inputs(g):
        memory = torch.randn(1, S, d, generator=g).expand(2 * B, S, d).clone()
        tgt = torch.randn(B, T, d, generator=g).repeat(2, 1, 1)
        tgt[B:, edit_from:] = torch.randn(B, T - edit_from, d, generator=g)
        out = dict(tgt=tgt, memory=memory, tgt_mask=torch.ones(T, T, dtype=torch.bool).tril())
        if with_memory_mask:
            out["memory_mask"] = (torch.arange(S) < S - 1).expand(2 * B, 1, S).clone()
        return out
    return inputs


def _prefix_change(B, edit_from):
    """Largest change of the outputs at positions before ``edit_from``."""
    return lambda out, inputs: (out[0][:B, :edit_from] - out[0][B:, :edit_from]).abs().amax()


def _causal_case(name, d, h, B, T, S, edit_from, seed, with_memory_mask=False):
    return Case(name=name, inputs=_future_edit_inputs(B, T, S, d, edit_from, with_memory_mask),
                init=dict(d_model=d, num_heads=h, dim_feedforward=2 * d), init_seed=seed, seed=seed,
                reference=lambda state, **_: torch.tensor(0.0), measure=_prefix_change(B, edit_from),
                outputs=(f"largest change of the outputs at positions 0..{edit_from - 1} when only "
                         f"target positions {edit_from}.. change (must be 0)",),
                mistakes=_decoder_mistakes(h)[2:4], hint_on_error=CROSS_HINT)


decoder_causal = Check(
    name="decoder_causal",
    target="TransformerDecoderLayer",
    kind="module",
    cases=[
        _causal_case("causal tgt_mask [6, 6], targets edited from position 3", 8, 2, 2, 6, 4, 3, 1020),
        _causal_case("causal tgt_mask [5, 5] and a memory padding mask, edited from position 1",
                     12, 3, 1, 5, 7, 1, 1021, with_memory_mask=True),
        _decoder_case("causal tgt_mask [5, 5], d_model=8, 2 heads, B=2, S=4", 8, 2, 16, 2, 5, 4, 1022,
                      tgt_mask_of=masks.causal(5)),
        _decoder_case("per-example causal tgt_mask [2, 4, 4] and memory_mask [2, 4, 6]", 12, 3, 24,
                      2, 4, 6, 1023, tgt_mask_of=masks.per_example(2, 4, 4, causal=True),
                      memory_mask_of=masks.per_example(2, 4, 6)),
    ],
)


# ---------------------------------------------------------------- the tiny Transformer
def _layer_indices(state, stack):
    return sorted({int(k.split(".")[1]) for k in state if k.startswith(f"{stack}.")})


def reference_model(num_heads, *, causal=True, tied=True, memory_padding=True, activation="relu"):
    """Logits of the tiny Transformer from its state, with nn.Transformer*Layer built-ins.

    The keyword arguments make it wrong in one known way each (no causal mask in
    the decoder, an output projection of its own, no padding mask in the
    cross-attention, another activation in the decoder's feed-forward network).
    """
    def output(state, src, tgt, src_padding_mask=None):
        emb = state["embedding.weight"]
        d_model = emb.shape[1]
        pe = reference_pe(max(src.shape[1], tgt.shape[1]), d_model)

        def embed(ids):
            return F.embedding(ids, emb) * math.sqrt(d_model) + pe[: ids.shape[1]]

        padding = None if src_padding_mask is None else ~src_padding_mask
        T = tgt.shape[1]
        blocked = ~torch.ones(T, T, dtype=torch.bool).tril() if causal else None
        with torch.enable_grad():
            x = embed(src)
            for i in _layer_indices(state, "encoder_layers"):
                x = builtin_encoder_layer(state, num_heads, f"encoder_layers.{i}.")(x, src_key_padding_mask=padding)
            memory, y = x, embed(tgt)
            for i in _layer_indices(state, "decoder_layers"):
                prefix = f"decoder_layers.{i}."
                y = builtin_decoder_layer(state, num_heads, prefix, activation)(
                    y, memory, tgt_mask=blocked, memory_key_padding_mask=padding if memory_padding else None)
            weight = emb if tied else state["out_proj.weight"]
            return F.linear(y, weight, None if tied else state.get("out_proj.bias"))
    return output


def _with_bias(num_heads):
    reference = reference_model(num_heads)

    def output(state, src, tgt, src_padding_mask=None):
        return reference(state, src, tgt, src_padding_mask) + state["out_proj.bias"]
    return output


def _model_mistakes(num_heads):
    return (
        Mistake("no_causal_mask", reference_model(num_heads, causal=False),
                "the decoder has no causal mask: build torch.ones(T, T, dtype=torch.bool).tril() "
                "in decode and pass it as tgt_mask to every decoder layer, so that position t "
                "cannot see target tokens after t"),
        Mistake("untied", reference_model(num_heads, tied=False),
                "the logits do not come from the embedding matrix: the output projection must "
                "share the embedding's weight (self.out_proj.weight = self.embedding.weight)"),
        Mistake("output_bias", _with_bias(num_heads),
                "the output projection has a bias: use nn.Linear(d_model, vocab_size, bias=False)"),
        Mistake("gelu", reference_model(num_heads, activation="gelu"), GELU),
        Mistake("no_memory_padding", reference_model(num_heads, memory_padding=False),
                "the cross-attention ignores src_padding_mask: pass it to every decoder layer as "
                "memory_mask (shape [B, 1, S]), so that no query attends to padded source tokens"),
    )


MODEL_HINT = ("The model needs the attributes embedding, encoder_layers, decoder_layers and "
              "out_proj, and forward(src, tgt, src_padding_mask=None) -> logits [B, T, vocab_size].")


def _token_inputs(B, S, T, vocab, lengths=None):
    def inputs(g):
        out = dict(src=torch.randint(0, vocab, (B, S), generator=g),
                   tgt=torch.randint(0, vocab, (B, T), generator=g))
        if lengths is not None:
            out["src_padding_mask"] = torch.arange(S) < torch.tensor(lengths)[:, None]
        return out
    return inputs


def _model_init(vocab, d, h, layers, ff):
    return dict(vocab_size=vocab, d_model=d, num_heads=h, num_layers=layers, dim_feedforward=ff)


transformer_matches_reference = Check(
    name="transformer_matches_reference",
    target="Transformer",
    kind="module",
    cases=[
        Case(name="vocab 11, d_model=16, 2 heads, 2 layers, B=2, S=5, T=4", inputs=_token_inputs(2, 5, 4, 11),
             init=_model_init(11, 16, 2, 2, 32), init_seed=1100, seed=1100, reference=reference_model(2),
             outputs=("logits",), mistakes=_model_mistakes(2), hint_on_error=MODEL_HINT),
        Case(name="vocab 7, d_model=12, 3 heads, 1 layer, B=3, S=4, T=6", inputs=_token_inputs(3, 4, 6, 7),
             init=_model_init(7, 12, 3, 1, 24), init_seed=1101, seed=1101, reference=reference_model(3),
             outputs=("logits",), mistakes=_model_mistakes(3), hint_on_error=MODEL_HINT),
        Case(name="source padding, src_padding_mask [3, 6] with lengths 6, 3, 4",
             inputs=_token_inputs(3, 6, 5, 9, lengths=[6, 3, 4]), init=_model_init(9, 16, 4, 2, 32),
             init_seed=1102, seed=1102, reference=reference_model(4), outputs=("logits",),
             mistakes=_model_mistakes(4), hint_on_error=MODEL_HINT),
    ],
)


def _model_future_edit(B, S, T, vocab, edit_from):
    def inputs(g):
        src = torch.randint(0, vocab, (B, S), generator=g).repeat(2, 1)
        tgt = torch.randint(0, vocab, (B, T), generator=g).repeat(2, 1)
        tgt[B:, edit_from:] = (tgt[B:, edit_from:] + 1 + torch.randint(0, vocab - 1, (B, T - edit_from),
                                                                       generator=g)) % vocab
        return dict(src=src, tgt=tgt)
    return inputs


transformer_causal = Check(
    name="transformer_causal",
    target="Transformer",
    kind="module",
    cases=[Case(name=f"vocab {v}, d_model={d}, {h} heads, T={T}, target tokens edited from position {e}",
                inputs=_model_future_edit(B, S, T, v, e), init=_model_init(v, d, h, 2, 2 * d),
                init_seed=1110 + i, seed=1110 + i, reference=lambda state, **_: torch.tensor(0.0),
                measure=_prefix_change(B, e),
                outputs=(f"largest change of the logits at positions 0..{e - 1} when only target "
                         f"tokens {e}.. change (must be 0)",),
                mistakes=_model_mistakes(h)[:1], hint_on_error=MODEL_HINT)
           for i, (v, d, h, B, S, T, e) in enumerate([(11, 16, 2, 2, 5, 6, 3), (7, 8, 2, 1, 4, 5, 1)])],
)


# ---------------------------------------------------------------- weight tying
# The hidden test runs ``weight_tying`` on this expression, evaluated where the
# learner's Transformer is defined (the grader's worker sees only the notebook's
# names): it builds the model and reports whether out_proj.weight *is* the
# embedding's weight and whether the two hold the same values.
TYING_PROBE = ("lambda init: (lambda m: (float(m.out_proj.weight is m.embedding.weight), "
               "float(torch.equal(m.out_proj.weight.detach(), m.embedding.weight.detach()))))"
               "(Transformer(**init))")


def tying_probe(model_class):
    """:data:`TYING_PROBE` as a function of ``model_class`` (for in-process runs)."""
    if model_class is None:
        return None
    return eval(TYING_PROBE, {"torch": torch, "Transformer": model_class})  # noqa: S307 (our own constant)


TYING_OUTPUTS = ("out_proj.weight is embedding.weight", "out_proj.weight equals embedding.weight")

weight_tying = Check(
    name="weight_tying",
    target="Transformer",
    args=(),  # the hidden test's wrapper, called by keyword
    cases=[Case(name=f"Transformer({', '.join(f'{k}={v}' for k, v in init.items())})",
                inputs=lambda g, init=init: dict(init=init),
                reference=lambda init: (1.0, 1.0), outputs=TYING_OUTPUTS, atol=0.0, rtol=0.0,
                mistakes=(
                    Mistake("copy", lambda init: (0.0, 1.0),
                            "out_proj.weight holds a copy of the embedding weights, not the same tensor: "
                            "after training the two would drift apart. Share the Parameter itself: "
                            "self.out_proj.weight = self.embedding.weight"),
                    Mistake("untied", lambda init: (0.0, 0.0),
                            "out_proj.weight is not tied to the embedding: share the Parameter, "
                            "self.out_proj.weight = self.embedding.weight"),
                ),
                hint_on_error=MODEL_HINT)
           for init in (_model_init(11, 16, 2, 2, 32), _model_init(5, 8, 1, 1, 8))],
)
