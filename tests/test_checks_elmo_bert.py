"""The check library of 09_elmo_bert judges in-process targets: right code passes
every check, each known mistake fails with a message that names it."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks import run
from autograder.checks.core import judge, make_inputs
from autograder.learner_side.call import call_target
from autograder.checks import elmo_bert as eb


def esc(phrase):
    return "".join("\\" + c if c in "()[].*+?^$|{}\\" else c for c in phrase)


# ------------------------------------------------------------------ scalar_mix
def scalar_mix(kind="ok"):
    def mix(layers, s, gamma):
        w = {"no_softmax": s, "uniform": torch.full_like(s, 1 / len(s))}.get(kind, torch.softmax(s, 0))
        out = (w.view(-1, *[1] * (layers.dim() - 1)) * layers).sum(0)
        return out if kind == "no_gamma" else gamma * out
    return mix


@pytest.mark.parametrize("kind, phrase", [("no_softmax", "softmax(s)"), ("no_gamma", "gamma"),
                                          ("uniform", "equal weights")])
def test_scalar_mix(kind, phrase):
    run(eb.scalar_mix_values, scalar_mix())
    with pytest.raises(AssertionError, match=esc(phrase)):
        run(eb.scalar_mix_values, scalar_mix(kind))


# ------------------------------------------------------------------ mask_tokens
def mask_tokens(kind="ok"):
    def corrupt(input_ids, mask_token_id, vocab_size, special_tokens_mask=None, mlm_probability=0.15,
                generator=None):
        ids = input_ids if kind == "in_place" else input_ids.clone()
        labels = input_ids.clone()
        probs = torch.full(ids.shape, mlm_probability)
        if special_tokens_mask is not None and kind != "special":
            probs[special_tokens_mask] = 0.0
        selected = torch.rand(ids.shape, generator=generator) < probs
        u = torch.rand(ids.shape, generator=generator)
        p_mask, p_rand = {"all_mask": (1.0, 0.0), "ten_of_rest": (0.8, 0.82), "no_keep": (0.8, 1.0)}.get(kind, (0.8, 0.9))
        random_ids = torch.randint(vocab_size, ids.shape, generator=generator)
        ids[selected & (u < p_mask)] = mask_token_id
        r = selected & (u >= p_mask) & (u < p_rand)
        ids[r] = random_ids[r]
        if kind == "labels_everywhere":
            return ids, labels
        if kind == "labels_corrupted":
            return ids, torch.where(selected, ids, torch.full_like(ids, -100))
        labels[~selected] = -100
        return ids, labels
    return corrupt


def test_mask_tokens_correct_passes():
    for check in (eb.mask_tokens_labels, eb.mask_tokens_proportions):
        run(check, mask_tokens())
    run(eb.mask_tokens_keeps_input, eb.returning_input(mask_tokens()))


def test_mask_tokens_statistics_hold_for_any_salt():
    """The grader draws inputs with a secret salt: the tolerances must hold for
    every salt, not only for the case seeds (each is 6+ standard errors wide)."""
    for salt in range(1, 2001, 50):
        for check in (eb.mask_tokens_labels, eb.mask_tokens_proportions):
            for case in check.cases:
                inputs = make_inputs(case, salt)
                judge(check, case, inputs, call_target("function", mask_tokens(), inputs)[0])


@pytest.mark.parametrize("kind, check, phrase", [
    ("labels_everywhere", "mask_tokens_labels", "labels must be -100"),
    ("labels_corrupted", "mask_tokens_labels", "ORIGINAL id"),
    ("special", "mask_tokens_labels", "special tokens are selected"),
    ("all_mask", "mask_tokens_proportions", "every selected position became [MASK]"),
    ("ten_of_rest", "mask_tokens_proportions", "80/10/10 proportions are wrong"),
    ("no_keep", "mask_tokens_proportions", "no selected position stays unchanged"),
])
def test_mask_tokens_mistake_is_named(kind, check, phrase):
    with pytest.raises(AssertionError, match=esc(phrase)):
        run(getattr(eb, check), mask_tokens(kind))


def test_mask_tokens_in_place_is_named():
    with pytest.raises(AssertionError, match="modified in place"):
        run(eb.mask_tokens_keeps_input, eb.returning_input(mask_tokens("in_place")))


# ------------------------------------------------------------------ encoder layer
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, dropout=0.0, bias=True):
        super().__init__()
        self.num_heads, self.d_k = num_heads, d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model, bias=bias)
        self.W_k = nn.Linear(d_model, d_model, bias=bias)
        self.W_v = nn.Linear(d_model, d_model, bias=bias)
        self.W_o = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query, key, value, mask=None):
        B, Tq, D = query.shape
        split = lambda t: t.view(B, -1, self.num_heads, self.d_k).transpose(1, 2)
        q, k, v = split(self.W_q(query)), split(self.W_k(key)), split(self.W_v(value))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_k)
        if mask is not None:
            scores = scores.masked_fill(~(mask.unsqueeze(1) if mask.dim() == 3 else mask), float("-inf"))
        w = torch.softmax(scores, -1)
        out = (self.dropout(w) @ v).transpose(1, 2).reshape(B, Tq, D)
        return self.W_o(out), w


class EncoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, dim_feedforward, dropout=0.1, activation="gelu", kind="ok"):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.act = {"gelu": F.gelu, "relu": F.relu}[activation]
        self.kind = kind

    def _sa(self, x, padding_mask):
        mask = None
        if padding_mask is not None:
            mask = (~padding_mask if self.kind == "inverted" else padding_mask).unsqueeze(1)
        return self.dropout(self.self_attn(x, x, x, mask)[0])

    def _ff(self, x):
        return self.dropout(self.linear2(self.dropout(self.act(self.linear1(x)))))

    def forward(self, x, padding_mask=None):
        if self.kind == "pre_ln":
            x = x + self._sa(self.norm1(x), padding_mask)
            return x + self._ff(self.norm2(x))
        x = self.norm1(x + self._sa(x, padding_mask))
        return self.norm2(x + self._ff(x))


def test_encoder_layer_correct_passes():
    run(eb.encoder_layer_matches_builtin, EncoderLayer)
    run(eb.encoder_layer_padding, EncoderLayer)


@pytest.mark.parametrize("kind, check, phrase", [
    ("pre_ln", "encoder_layer_matches_builtin", "pre-LN"),
    ("inverted", "encoder_layer_padding", "padding mask is inverted"),
])
def test_encoder_layer_mistake_is_named(kind, check, phrase):
    with pytest.raises(AssertionError, match=phrase):
        run(getattr(eb, check), lambda *a, **kw: EncoderLayer(*a, **kw, kind=kind))


# ------------------------------------------------------------------ freeze / count
def freeze_(module):
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def test_freeze_and_count():
    wrap = eb.on_tiny_model
    run(eb.freeze_all, wrap(freeze_))
    run(eb.count_trainable, wrap(lambda module: sum(p.numel() for p in module.parameters() if p.requires_grad)))
    with pytest.raises(AssertionError, match="module.eval"):
        run(eb.freeze_all, wrap(lambda module: module.eval()))
    with pytest.raises(AssertionError, match="recurses into every submodule"):
        run(eb.freeze_all, wrap(lambda module: [p.requires_grad_(False) for p in module.parameters(recurse=False)]
                                and module))
    with pytest.raises(AssertionError, match="must return the module"):
        run(eb.freeze_all, wrap(lambda module: freeze_(module) and None))
    with pytest.raises(AssertionError, match="frozen parameters are counted"):
        run(eb.count_trainable, wrap(lambda module: sum(p.numel() for p in module.parameters())))
    with pytest.raises(AssertionError, match="state_dict"):
        run(eb.count_trainable, wrap(lambda module: sum(v.numel() for v in module.state_dict().values())))
