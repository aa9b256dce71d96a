"""Checks for assignment 09_elmo_bert (COURSE_SPEC.md).

* ``scalar_mix``: ELMo's task-specific weighting of the layers, gamma ·
  Σ_j softmax(s)_j · layer_j (Peters et al. 2018, eq. 1).
* ``mask_tokens``: BERT's masked-LM corruption (Devlin et al. 2019, sec. 3.1),
  judged by statistics on a large seeded input: the selection rate among
  non-special positions, the 80/10/10 split among selected positions, labels
  of -100 elsewhere, special positions never selected, the input untouched.
* ``TransformerEncoderLayer``: the reference is ``nn.TransformerEncoderLayer(
  batch_first=True, norm_first=False)`` in eval mode holding the learner's
  weights; our padding mask (True = real token) is its
  ``src_key_padding_mask = ~padding_mask`` (True = pad).
* ``freeze_`` and ``count_trainable_parameters`` on small models built here.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .core import Case, Check, Mistake, child_generator, put
from ..learner_side.wrappers import on_tiny_model, returning_input, tiny_model  # noqa: F401 (hidden tests call checks.on_tiny_model)
from .multi_head import copy_into_builtin


# ---------------------------------------------------------------- scalar_mix
def reference_scalar_mix(layers, s, gamma):
    w = torch.softmax(torch.as_tensor(s, dtype=layers.dtype), dim=0)
    return gamma * (w.reshape(-1, *([1] * (layers.dim() - 1))) * layers).sum(0)


def _mix_with(weights_of, use_gamma=True):
    def output(layers, s, gamma):
        w = weights_of(torch.as_tensor(s, dtype=layers.dtype))
        mixed = (w.reshape(-1, *([1] * (layers.dim() - 1))) * layers).sum(0)
        return gamma * mixed if use_gamma else mixed
    return output


MIX_MISTAKES = (
    Mistake("no_softmax", _mix_with(lambda s: s),
            "the layer weights are the raw scalars s: normalise them with softmax(s) first "
            "so that they are positive and sum to 1"),
    Mistake("no_gamma", _mix_with(lambda s: torch.softmax(s, 0), use_gamma=False),
            "the mix is not multiplied by gamma, the task-specific scale"),
    Mistake("uniform", _mix_with(lambda s: torch.full_like(s, 1 / len(s))),
            "the layers are averaged with equal weights: weight layer j by softmax(s)_j"),
    Mistake("softmax_wrong_axis", lambda layers, s, gamma: gamma * (torch.softmax(layers, dim=0) * layers).sum(0),
            "the softmax is taken over the layer activations; it must be taken over the "
            "scalars s (one weight per layer)"),
)


def _mix_inputs(L, shape, gamma_tensor):
    def inputs(g):
        gamma = 0.5 + torch.rand((), generator=g)
        return dict(layers=torch.randn(L, *shape, generator=g), s=torch.randn(L, generator=g),
                    gamma=gamma if gamma_tensor else round(gamma.item(), 3))
    return inputs


scalar_mix_values = Check(
    name="scalar_mix_values",
    target="scalar_mix",
    cases=[Case(name=f"layers [{L}, {', '.join(map(str, shape))}], gamma as {'tensor' if gt else 'float'}",
                inputs=_mix_inputs(L, shape, gt), reference=reference_scalar_mix, seed=900 + i,
                mistakes=MIX_MISTAKES)
           for i, (L, shape, gt) in enumerate([(3, (4,), False), (3, (2, 5, 8), True), (2, (7, 6), False),
                                               (4, (3, 2, 4), True)])],
)


# ---------------------------------------------------------------- mask_tokens
MASK_ID, VOCAB, N_SPECIAL = 4, 1000, 5  # ids 0..4 are special ([PAD], [CLS], [SEP], [UNK], [MASK])


def _special(ids):
    """The special-tokens mask: True at [PAD], [CLS] and [SEP]."""
    return (ids == 0) | (ids == 1) | (ids == 2)


def _batch(rows, cols, g):
    """Token ids [rows, cols] with [CLS] first, [SEP] last and some padding."""
    ids = torch.randint(N_SPECIAL, VOCAB, (rows, cols), generator=g)
    lengths = torch.randint(cols // 2, cols + 1, (rows,), generator=g)
    pos = torch.arange(cols)
    ids[pos >= lengths[:, None]] = 0
    ids[:, 0] = 1
    ids[torch.arange(rows), lengths - 1] = 2
    return ids


def _mask_inputs(rows, cols, p, with_special=True):
    def inputs(g):
        ids = _batch(rows, cols, g)
        return dict(input_ids=ids, mask_token_id=MASK_ID, vocab_size=VOCAB,
                    special_tokens_mask=_special(ids) if with_special else None, mlm_probability=p,
                    generator=child_generator(g))
    return inputs


def reference_mask_tokens(input_ids, mask_token_id, vocab_size, special_tokens_mask=None,
                          mlm_probability=0.15, generator=None, split=(0.8, 0.5), special=True):
    """BERT's corruption (the data collator of Hugging Face transformers, in our names)."""
    labels = input_ids.clone()
    probs = torch.full(input_ids.shape, mlm_probability)
    if special_tokens_mask is not None and special:
        probs.masked_fill_(special_tokens_mask, 0.0)
    selected = torch.bernoulli(probs, generator=generator).bool()
    labels[~selected] = -100
    corrupted = input_ids.clone()
    masked = torch.bernoulli(torch.full(input_ids.shape, split[0]), generator=generator).bool() & selected
    corrupted[masked] = mask_token_id
    rand = torch.bernoulli(torch.full(input_ids.shape, split[1]), generator=generator).bool() & selected & ~masked
    corrupted[rand] = torch.randint(vocab_size, input_ids.shape, generator=generator)[rand]
    return corrupted, labels


def _wrong_mask(**change):
    def output(input_ids, mask_token_id, vocab_size, special_tokens_mask=None, mlm_probability=0.15,
               generator=None):
        g = torch.Generator().manual_seed(12345)  # its own draws: the learner's are used up
        kw = dict(split=change.get("split", (0.8, 0.5)), special=change.get("special", True))
        corrupted, labels = reference_mask_tokens(input_ids, mask_token_id, vocab_size, special_tokens_mask,
                                                  mlm_probability, g, **kw)
        if change.get("labels") == "everywhere":
            labels = input_ids.clone()
        elif change.get("labels") == "zero":
            labels = torch.where(labels == -100, torch.zeros_like(labels), labels)
        elif change.get("labels") == "corrupted":
            labels = torch.where(labels == -100, labels, corrupted)
        return corrupted, labels
    return output


def _label_properties(out, inputs):
    corrupted, labels, ids = out[0], out[1], inputs["input_ids"]
    special, chosen = _special(ids), labels != -100
    return (chosen[~special].float().mean(),
            chosen[special].float().mean(),
            (chosen & (labels != ids)).float().mean(),
            (~chosen & (corrupted != ids)).float().mean())


LABEL_OUTPUTS = ("selection rate among non-special positions", "fraction of special positions selected",
                 "fraction of labels that are not the original id", "fraction of unselected positions changed")
NOT_MINUS_100 = ("labels must be -100 at every position that was not selected (the loss ignores -100); "
                 "keep the original id only at the selected positions")
SPECIAL_MASKED = ("special tokens are selected for masking: positions where special_tokens_mask is True "
                  "([CLS], [SEP], [PAD]) must never be selected")
LABEL_MISTAKES = (
    Mistake("labels_everywhere", _wrong_mask(labels="everywhere"), NOT_MINUS_100),
    Mistake("labels_zero", _wrong_mask(labels="zero"), NOT_MINUS_100),
    Mistake("labels_corrupted", _wrong_mask(labels="corrupted"),
            "the labels hold the corrupted ids; they must hold the ORIGINAL id at the selected positions "
            "(take labels = input_ids.clone() before corrupting)"),
    Mistake("special_masked", _wrong_mask(special=False), SPECIAL_MASKED),
)


def _label_case(rows, cols, seed, p=0.15, with_special=True):
    return Case(
        name=f"input_ids [{rows}, {cols}], mlm_probability={p}" + ("" if with_special else ", no special_tokens_mask"),
        inputs=_mask_inputs(rows, cols, p, with_special), seed=seed,
        reference=lambda **kw: (p, 0.0 if with_special else p, 0.0, 0.0),
        measure=_label_properties, outputs=LABEL_OUTPUTS, atol=0.01, rtol=0.0,
        mistakes=LABEL_MISTAKES)


mask_tokens_labels = Check(
    name="mask_tokens_labels",
    target="mask_tokens",
    # Sizes put every tolerance at 6 or more binomial standard errors: an
    # honest implementation passes whatever the grader's secret salt.
    cases=[_label_case(400, 256, 910), _label_case(400, 256, 920, p=0.3),
           _label_case(3200, 64, 930, with_special=False)],
)


def _split_properties(out, inputs):
    corrupted, labels = out[0], out[1]
    chosen = labels != -100
    n = chosen.sum().clamp(min=1)
    masked = (corrupted == MASK_ID) & chosen
    unchanged = (corrupted == labels) & chosen & ~masked
    return masked.sum() / n, (chosen & ~masked & ~unchanged).sum() / n, unchanged.sum() / n


SPLIT_MISTAKES = (
    Mistake("all_masked", _wrong_mask(split=(1.0, 0.0)),
            "every selected position became [MASK]: of the selected positions 80% become [MASK], "
            "10% a random token and 10% stay unchanged"),
    Mistake("random_10_percent_of_the_rest", _wrong_mask(split=(0.8, 0.1)),
            "the 80/10/10 proportions are wrong: only about 2% of the selected positions got a random "
            "token. After the 80% [MASK], half of the REMAINING 20% (probability 0.5, not 0.1) become a "
            "random token"),
    Mistake("no_unchanged", _wrong_mask(split=(0.8, 1.0)),
            "the 80/10/10 proportions are wrong: no selected position stays unchanged; after the 80% "
            "[MASK], half of the remaining 20% become random and half keep their token"),
    Mistake("mask_10_random_80", _wrong_mask(split=(0.1, 8 / 9)),
            "the 80/10/10 proportions are swapped: 80% of the selected positions must become [MASK] "
            "and 10% a random token"),
)

mask_tokens_proportions = Check(
    name="mask_tokens_proportions",
    target="mask_tokens",
    cases=[Case(name=f"input_ids [{r}, {c}], mlm_probability={p}", inputs=_mask_inputs(r, c, p), seed=seed,
                reference=lambda **kw: (0.8, 0.1, 0.1), measure=_split_properties,
                outputs=("fraction of selected -> [MASK]", "fraction of selected -> random token",
                         "fraction of selected unchanged"),
                atol=0.03, rtol=0.0, mistakes=SPLIT_MISTAKES)
           for r, c, seed, p in [(400, 256, 940, 0.15), (400, 256, 950, 0.3)]],
)


def _in_place(input_ids, **kw):
    corrupted, labels = _wrong_mask()(input_ids, **kw)
    return corrupted, labels, corrupted


def _input_changed(out, inputs):
    return (float((out[2] != inputs["input_ids"]).any()),)


mask_tokens_keeps_input = Check(
    name="mask_tokens_keeps_input",
    target="mask_tokens",
    cases=[Case(name="input_ids [50, 64] after the call", inputs=_mask_inputs(50, 64, 0.15), seed=960,
                reference=lambda **kw: (0.0,), measure=_input_changed,
                outputs=("input_ids changed by the call (1 = yes)",), atol=0.0, rtol=0.0,
                mistakes=(Mistake("in_place", _in_place,
                                  "input_ids was modified in place: corrupt a copy, "
                                  "corrupted = input_ids.clone()"),))],
)


# ---------------------------------------------------------------- TransformerEncoderLayer
def _builtin_layer(state, num_heads, dim_feedforward, activation, norm_first=False):
    d_model = state["norm1.weight"].shape[0]
    layer = nn.TransformerEncoderLayer(d_model, num_heads, dim_feedforward, dropout=0.0, activation=activation,
                                       batch_first=True, norm_first=norm_first)
    copy_into_builtin(layer.self_attn, state, "self_attn")
    for name in ("linear1", "linear2", "norm1", "norm2"):
        put(layer, f"{name}.weight", state[f"{name}.weight"])
        put(layer, f"{name}.bias", state[f"{name}.bias"])
    return layer.eval()


def reference_encoder_layer(num_heads, dim_feedforward, activation="gelu", norm_first=False, invert=False):
    def output(state, x, padding_mask=None):
        layer = _builtin_layer(state, num_heads, dim_feedforward, activation, norm_first)
        pad = None
        if padding_mask is not None:
            pad = padding_mask if invert else ~padding_mask
        return layer(x, src_key_padding_mask=pad)
    return output


def _no_residual(num_heads, dim_feedforward, activation="gelu"):
    def output(state, x, padding_mask=None):
        layer = _builtin_layer(state, num_heads, dim_feedforward, activation)
        pad = None if padding_mask is None else ~padding_mask
        a = layer.self_attn(x, x, x, key_padding_mask=pad, need_weights=False)[0]
        h = layer.norm1(x + a)
        return layer.norm2(layer.linear2(layer.activation(layer.linear1(h))))
    return output


def _layer_mistakes(h, ff, act):
    other = "relu" if act == "gelu" else "gelu"
    return (
        Mistake("pre_ln", reference_encoder_layer(h, ff, act, norm_first=True),
                "this is a pre-LN layer (x + sublayer(norm(x))); the original Transformer and BERT are "
                "post-LN: x = norm1(x + self_attn(x)), then x = norm2(x + feed_forward(x))"),
        Mistake("padding_inverted", reference_encoder_layer(h, ff, act, invert=True),
                "the padding mask is inverted: padding_mask is True at REAL tokens (our convention, "
                "True = may attend); nn.TransformerEncoderLayer's src_key_padding_mask is True at PADS"),
        Mistake("wrong_activation", reference_encoder_layer(h, ff, other),
                f"the feed-forward activation is {other}; use the activation argument "
                f"(here {act!r})"),
        Mistake("no_ff_residual", _no_residual(h, ff, act),
                "the feed-forward sublayer has no residual connection: norm2(x + feed_forward(x))"),
    )


def _layer_case(name, d, h, ff, B, T, seed, act=None, lengths=None, dropout=None):
    init = dict(d_model=d, num_heads=h, dim_feedforward=ff)
    if act is not None:
        init["activation"] = act
    if dropout is not None:
        init["dropout"] = dropout

    def inputs(g):
        out = dict(x=torch.randn(B, T, d, generator=g))
        if lengths is not None:
            out["padding_mask"] = torch.arange(T) < torch.tensor(lengths)[:, None]
        return out
    return Case(name=name, inputs=inputs, init=init, init_seed=seed, seed=seed,
                reference=reference_encoder_layer(h, ff, act or "gelu"), atol=1e-4, rtol=1e-4,
                mistakes=_layer_mistakes(h, ff, act or "gelu"),
                hint_on_error="forward(x, padding_mask=None) with padding_mask [B, T], True at real "
                              "tokens, is given to self_attn as a [B, 1, T] mask")


encoder_layer_matches_builtin = Check(
    name="encoder_layer_matches_builtin",
    target="TransformerEncoderLayer",
    kind="module",
    cases=[
        _layer_case("d_model=8, 2 heads, ff=16, B=2, T=5", 8, 2, 16, 2, 5, 970),
        _layer_case("d_model=12, 3 heads, ff=24, activation='relu', B=3, T=4", 12, 3, 24, 3, 4, 971, act="relu"),
        _layer_case("d_model=16, 4 heads, ff=32, dropout=0.3 in eval mode, B=1, T=7", 16, 4, 32, 1, 7, 972,
                    dropout=0.3),
    ],
)

encoder_layer_padding = Check(
    name="encoder_layer_padding",
    target="TransformerEncoderLayer",
    kind="module",
    cases=[
        _layer_case("padding_mask with lengths [5, 3], d_model=8, 2 heads", 8, 2, 16, 2, 5, 980, lengths=[5, 3]),
        _layer_case("padding_mask with lengths [6, 2, 4], d_model=12, 4 heads", 12, 4, 20, 3, 6, 981,
                    lengths=[6, 2, 4]),
    ],
)


# ---------------------------------------------------------------- freeze_ / count
def _freeze_mistake(apply):
    def output(frozen=(), what="freeze"):
        m = tiny_model()
        apply(m)
        return sum(p.requires_grad for p in m.parameters())
    return output


freeze_all = Check(
    name="freeze_all",
    target="freeze_",
    args=(),  # on_tiny_model's wrapper, called by keyword
    cases=[Case(name="a small model with nested submodules", inputs=lambda g: dict(frozen=(), what="freeze"),
                reference=lambda frozen, what: 0,
                outputs=("number of parameters with requires_grad=True",), atol=0, rtol=0,
                mistakes=(Mistake("top_level_only", _freeze_mistake(
                              lambda m: [p.requires_grad_(False) for p in m.parameters(recurse=False)]),
                              "only the module's own parameters were frozen: use module.parameters(), "
                              "which recurses into every submodule"),
                          Mistake("eval_only", _freeze_mistake(lambda m: m.eval()),
                                  "module.eval() does not freeze anything (it switches dropout and "
                                  "batch norm to evaluation); set requires_grad = False on every parameter"),
                          Mistake("children_only", _freeze_mistake(
                              lambda m: [p.requires_grad_(False) for c in list(m.children())[:1] for p in c.parameters()]),
                              "not every parameter was frozen")),
                hint_on_error="freeze_ must return the module it was given")],
)


def _count(select):
    return lambda frozen=(), what="count": sum(select(tiny_model(tuple(frozen))))


count_trainable = Check(
    name="count_trainable",
    target="count_trainable_parameters",
    args=(),  # on_tiny_model's wrapper, called by keyword
    cases=[Case(name=f"a small model with tied weights, {'nothing' if not frozen else ', '.join(frozen)} frozen",
                inputs=lambda g, frozen=frozen: dict(frozen=frozen, what="count"),
                reference=_count(lambda m: [p.numel() for p in m.parameters() if p.requires_grad]),
                outputs=("count",), atol=0, rtol=0,
                mistakes=(Mistake("counts_frozen", _count(lambda m: [p.numel() for p in m.parameters()]),
                                  "frozen parameters are counted too: count only those with requires_grad"),
                          Mistake("counts_tensors", _count(lambda m: [1 for p in m.parameters() if p.requires_grad]),
                                  "this counts parameter tensors; count their elements with p.numel()"),
                          Mistake("state_dict", _count(lambda m: [v.numel() for k, v in m.state_dict().items()]),
                                  "this counts the state_dict: it includes buffers (BatchNorm's running "
                                  "statistics) and counts tied weights twice; use module.parameters()")))
           for frozen in [(), ("embedding", "encoder"), ("encoder",)]],
)
