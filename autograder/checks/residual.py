"""Checks for assignment 07_residual (COURSE_SPEC.md).

torchvision is not installed here, so the reference ``BasicBlock`` is
:class:`ReferenceBasicBlock` below, written to the layout and naming of
``torchvision.models.resnet.BasicBlock`` (conv1, bn1, relu, conv2, bn2,
downsample; He et al. 2016, fig. 2 and option B of sec. 3.3).  The learner's
``state_dict`` is loaded into it and both run in the case's mode: in training
mode the batch-norm layers use the batch statistics (so a freshly initialised
block is far from the identity and every part of it shows in the output), in
evaluation mode the running statistics.

``zero_pad_shortcut`` follows option A of He et al. (2016, sec. 3.3): subsample
by ``stride`` and append zero channels.  ``SublayerConnection`` is post-LN,
``LayerNorm(x + Sublayer(x))`` (Vaswani et al. 2017, sec. 5.4), computed with
``F.layer_norm``.  Only plain data can be sent to the learner's code, so the
hidden test passes :data:`SUBLAYER_ADAPTER`, a lambda that builds the module,
loads the norm's weight and bias, and calls it with a fixed attention-like
sublayer made from the case's tensors (:func:`sublayer`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .core import Case, Check, Mistake


# ------------------------------------------------------------------ BasicBlock
class ReferenceBasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock (expansion 1, no groups or dilation)."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


def _bn(state, prefix, x, training):
    return F.batch_norm(x, state[f"{prefix}.running_mean"].clone(), state[f"{prefix}.running_var"].clone(),
                        state[f"{prefix}.weight"], state[f"{prefix}.bias"], training, 0.1, 1e-5)


def _block(stride, training, variant="ok"):
    """A BasicBlock from a state_dict, with switches for the known mistakes."""
    def output(state, x):
        def bn(prefix, t):
            return _bn(state, prefix, t, training)
        h1 = F.relu(bn("bn1", F.conv2d(x, state["conv1.weight"], stride=stride, padding=1)))
        z = F.conv2d(h1, state["conv2.weight"], padding=1)
        if "downsample.0.weight" in state:
            shortcut = bn("downsample.1", F.conv2d(x, state["downsample.0.weight"], stride=stride))
        else:
            shortcut = x
        if variant == "always_project" and "downsample.0.weight" not in state:
            raise KeyError("downsample.0.weight")
        if variant == "relu_before_add":
            return F.relu(bn("bn2", z)) + shortcut
        if variant == "relu_before_and_after_add":
            return F.relu(F.relu(bn("bn2", z)) + shortcut)
        if variant == "add_before_bn2":
            return F.relu(bn("bn2", z + shortcut))
        if variant == "shortcut_from_h1":
            return F.relu(bn("bn2", z) + h1)
        if variant == "no_shortcut":
            return F.relu(bn("bn2", z))
        return F.relu(bn("bn2", z) + shortcut)
    return output


DOWNSAMPLE_KEY = ("downsample.0.weight: when the stride or the number of channels changes, "
                  "the shortcut must be downsample = nn.Sequential(nn.Conv2d(in_channels, "
                  "out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels))")


def reference_block(in_channels, out_channels, stride, training):
    """The learner's state loaded into :class:`ReferenceBasicBlock`, in the case's mode."""
    def reference(state, x):
        ref = ReferenceBasicBlock(in_channels, out_channels, stride)
        wanted = {}
        for key in ref.state_dict():
            if key not in state:
                raise KeyError(DOWNSAMPLE_KEY if key.startswith("downsample") else key)
            wanted[key] = state[key]
        ref.train(training)
        # functional_call runs the block on the state's own parameters (so gradients reach them)
        # and on copies of its running statistics (training mode updates them in place).
        buffers = {k for k, _ in ref.named_buffers()}
        return torch.func.functional_call(ref, {k: v.clone() if k in buffers else v for k, v in wanted.items()},
                                          (x,))
    return reference


RELU_BEFORE_ADD = ("the ReLU is applied before the addition: torchvision's BasicBlock adds "
                   "first and then applies the ReLU, out = relu(bn2(conv2(...)) + shortcut)")
WRONG_TENSOR = ("the shortcut adds the wrong tensor (the output of the first conv-bn-relu, "
                "after x was overwritten): keep identity = x at the start of forward and add it "
                "(or downsample(x)) at the end")
ADD_BEFORE_BN2 = ("the shortcut is added before bn2: the sum is bn2(conv2(h)) + shortcut, "
                  "then the ReLU")
NO_SHORTCUT = "the shortcut is missing: add identity = x (or downsample(x)) before the last ReLU"
ALWAYS_PROJECT = ("the block uses a projection shortcut although the shapes match: "
                  "downsample is None when stride == 1 and in_channels == out_channels")
BLOCK_HINT = ("A shape error at the addition usually means a missing downsample (when the stride "
              "or the number of channels changes, the shortcut is downsample(x), a 1x1 conv with "
              "that stride and a BatchNorm2d) or the shortcut applied to the wrong tensor "
              "(keep identity = x before x is overwritten).")


def _block_mistakes(stride, training):
    def wrong(variant):
        return _block(stride, training, variant)
    return (
        Mistake("relu_before_add", wrong("relu_before_add"), RELU_BEFORE_ADD),
        Mistake("relu_before_and_after_add", wrong("relu_before_and_after_add"), RELU_BEFORE_ADD),
        Mistake("shortcut_from_h1", wrong("shortcut_from_h1"), WRONG_TENSOR),
        Mistake("add_before_bn2", wrong("add_before_bn2"), ADD_BEFORE_BN2),
        Mistake("no_shortcut", wrong("no_shortcut"), NO_SHORTCUT),
        Mistake("always_project", wrong("always_project"), ALWAYS_PROJECT),
    )


def _block_case(c_in, c_out, stride, n, hw, seed, mode):
    training = mode == "train"
    return Case(name=f"BasicBlock({c_in}, {c_out}, stride={stride}) in {mode} mode, x [{n}, {c_in}, {hw}, {hw}]",
                init=dict(in_channels=c_in, out_channels=c_out, stride=stride), init_seed=seed,
                seed=seed, mode=mode, inputs=lambda g: dict(x=torch.randn(n, c_in, hw, hw, generator=g)),
                reference=reference_block(c_in, c_out, stride, training), atol=1e-4, rtol=1e-4,
                mistakes=_block_mistakes(stride, training), hint_on_error=BLOCK_HINT)


# Training mode first: there the batch norms use batch statistics, so a fresh
# block is far from the identity and every mistake shows.
basic_block_identity = Check(
    name="basic_block_identity",
    target="BasicBlock",
    kind="module",
    cases=[_block_case(4, 4, 1, 2, 6, 700, "train"), _block_case(8, 8, 1, 3, 5, 701, "train"),
           _block_case(4, 4, 1, 2, 5, 702, "eval")],
)

basic_block_downsample = Check(
    name="basic_block_downsample",
    target="BasicBlock",
    kind="module",
    cases=[_block_case(4, 8, 2, 2, 8, 710, "train"), _block_case(8, 8, 2, 2, 7, 711, "train"),
           _block_case(4, 8, 1, 2, 6, 712, "train"), _block_case(4, 8, 2, 2, 6, 713, "eval")],
)

def _layout_reference(in_channels, out_channels, stride, n, hw):
    """The output shape, after checking that the state has torchvision's names."""
    def reference(state, x):
        for key in ReferenceBasicBlock(in_channels, out_channels, stride).state_dict():
            if key not in state:
                raise KeyError(DOWNSAMPLE_KEY if key.startswith("downsample") else key)
        return torch.tensor([n, out_channels, (hw + stride - 1) // stride, (hw + stride - 1) // stride])
    return reference


basic_block_layout = Check(
    name="basic_block_layout",
    target="BasicBlock",
    kind="module",
    cases=[Case(name=f"BasicBlock({c_in}, {c_out}, stride={s}): parameter names and output shape, "
                     f"x [{n}, {c_in}, {hw}, {hw}]",
                init=dict(in_channels=c_in, out_channels=c_out, stride=s), init_seed=740 + i, seed=740 + i,
                inputs=lambda g, n=n, c_in=c_in, hw=hw: dict(x=torch.randn(n, c_in, hw, hw, generator=g)),
                reference=_layout_reference(c_in, c_out, s, n, hw),
                measure=lambda out, inputs: (torch.tensor(list(out[0].shape)),), outputs=("output shape",),
                hint_on_error=BLOCK_HINT)
           for i, (c_in, c_out, s, n, hw) in enumerate([(4, 4, 1, 2, 6), (4, 8, 2, 2, 8), (8, 8, 2, 1, 7),
                                                       (4, 8, 1, 2, 5)])],
)

# ------------------------------------------------------------ zero_pad_shortcut
def reference_zero_pad(x, out_channels, stride):
    """Option A of He et al. (2016): x[:, :, ::stride, ::stride], then zero channels appended."""
    sub = x[:, :, ::stride, ::stride]
    return F.pad(sub, (0, 0, 0, 0, 0, out_channels - x.shape[1]))


def _pad(sub, out_channels, where):
    extra = out_channels - sub.shape[1]
    front = {"end": 0, "front": extra, "both": extra // 2}[where]
    return F.pad(sub, (0, 0, 0, 0, front, extra - front))


ZERO_PAD_MISTAKES = (
    Mistake("no_subsampling", lambda x, out_channels, stride: _pad(x, out_channels, "end"),
            "the input is not subsampled: keep every stride-th row and column, x[:, :, ::stride, ::stride]"),
    Mistake("avg_pool", lambda x, out_channels, stride: _pad(
        F.avg_pool2d(x, stride, ceil_mode=True), out_channels, "end"),
            "the input is average-pooled; the parameter-free shortcut subsamples, x[:, :, ::stride, ::stride]"),
    Mistake("pad_front", lambda x, out_channels, stride: _pad(x[:, :, ::stride, ::stride], out_channels, "front"),
            "the zero channels are put in front; append them after the input's channels "
            "(out[:, :C] is the subsampled input)"),
    Mistake("pad_both", lambda x, out_channels, stride: _pad(x[:, :, ::stride, ::stride], out_channels, "both"),
            "the zero channels are split between both sides (as some CIFAR ResNets do); here they "
            "are appended after the input's channels"),
    Mistake("offset", lambda x, out_channels, stride: _pad(
        x[:, :, stride - 1::stride, stride - 1::stride], out_channels, "end"),
            "the subsampling starts at index stride - 1; start at 0, like a strided convolution "
            "with padding: x[:, :, ::stride, ::stride]"),
)

zero_pad_shortcut_values = Check(
    name="zero_pad_shortcut_values",
    target="zero_pad_shortcut",
    cases=[Case(name=f"x {[n, c, h, h]}, out_channels={o}, stride={s}",
                inputs=lambda g, n=n, c=c, h=h, o=o, s=s: dict(
                    x=torch.randn(n, c, h, h, generator=g), out_channels=o, stride=s),
                reference=reference_zero_pad, seed=720 + i, mistakes=ZERO_PAD_MISTAKES)
           for i, (n, c, h, o, s) in enumerate([(2, 4, 8, 8, 2), (1, 3, 7, 6, 2), (2, 4, 5, 4, 1),
                                                (2, 2, 6, 5, 3), (1, 6, 4, 6, 2)])]
    + [Case(name="out_channels=2 with 4 input channels", seed=725, reference=None,
            inputs=lambda g: dict(x=torch.randn(1, 4, 2, 2, generator=g), out_channels=2, stride=1),
            raises="ValueError", error_names="out_channels")],
)

# ---------------------------------------------------------- SublayerConnection
def sublayer(t, weight, bias):
    """The fixed sublayer of the checks, attention-like (it mixes the tokens):
    softmax(t t^T / sqrt(d)) t W + b, for t [B, T, d], W [d, d], b [d]."""
    return torch.softmax(t @ t.transpose(-2, -1) / t.shape[-1] ** 0.5, dim=-1) @ t @ weight + bias


# The target that the hidden test passes: a plain function of the case's
# tensors that builds the learner's module, loads the norm's parameters and
# calls it with the same sublayer as :func:`sublayer` (written out, because
# only plain data reaches the learner's code).
SUBLAYER_ADAPTER = """lambda x, weight, bias, norm_weight, norm_bias, d_model, **init: (lambda m: (
        m.norm.load_state_dict({"weight": norm_weight, "bias": norm_bias}),
        m.eval()(x, lambda t: torch.softmax(t @ t.transpose(-2, -1) / t.shape[-1] ** 0.5, dim=-1) @ t @ weight + bias),
    )[-1])(SublayerConnection(d_model, **init))"""


def _norm(t, norm_weight, norm_bias):
    return F.layer_norm(t, t.shape[-1:], norm_weight, norm_bias, 1e-5)


def _connection(combine):
    """A function of the case's inputs: combine(x, sub, norm) with sub and norm bound."""
    def output(x, weight, bias, norm_weight, norm_bias, d_model, dropout=0.0):
        return combine(x, lambda t: sublayer(t, weight, bias), lambda t: _norm(t, norm_weight, norm_bias))
    return output


reference_sublayer_connection = _connection(lambda x, sub, norm: norm(x + sub(x)))

PRE_LN = ("this is pre-LN, x + sublayer(norm(x)); the original Transformer, and this exercise, "
          "use post-LN: norm(x + dropout(sublayer(x)))")
NORMED_SHORTCUT = ("the shortcut carries norm(x) instead of x: post-LN adds the unnormalised input, "
                   "norm(x + dropout(sublayer(x)))")
NORM_SUBLAYER_ONLY = ("only the sublayer's output is normalised, x + norm(sublayer(x)); post-LN "
                      "normalises the sum: norm(x + dropout(sublayer(x)))")
NO_RESIDUAL = "x is not added: post-LN is norm(x + dropout(sublayer(x)))"

SUBLAYER_MISTAKES = (
    Mistake("pre_ln", _connection(lambda x, sub, norm: x + sub(norm(x))), PRE_LN),
    Mistake("pre_ln_with_final_norm", _connection(lambda x, sub, norm: norm(x + sub(norm(x)))), PRE_LN),
    Mistake("normed_shortcut", _connection(lambda x, sub, norm: norm(x) + sub(norm(x))), NORMED_SHORTCUT),
    Mistake("normed_shortcut_post", _connection(lambda x, sub, norm: norm(norm(x) + sub(x))), NORMED_SHORTCUT),
    Mistake("norm_sublayer_only", _connection(lambda x, sub, norm: x + norm(sub(x))), NORM_SUBLAYER_ONLY),
    Mistake("no_residual", _connection(lambda x, sub, norm: norm(sub(x))), NO_RESIDUAL),
)


def _sublayer_inputs(shape, dropout):
    def inputs(g):
        d = shape[-1]
        out = dict(x=torch.randn(*shape, generator=g) + 0.5,
                   weight=torch.randn(d, d, generator=g) / d ** 0.5,
                   bias=0.5 * torch.randn(d, generator=g),
                   norm_weight=1.0 + 0.3 * torch.randn(d, generator=g),
                   norm_bias=0.3 * torch.randn(d, generator=g),
                   d_model=d)
        if dropout:
            out["dropout"] = dropout
        return out
    return inputs


sublayer_connection_post_ln = Check(
    name="sublayer_connection_post_ln",
    target="SublayerConnection",
    args=(),  # the hidden test's wrapper, called by keyword
    cases=[Case(name=f"d_model={shape[-1]}, x {list(shape)}" + (f", dropout={p} in eval mode" if p else ""),
                inputs=_sublayer_inputs(shape, p), seed=730 + i,
                reference=reference_sublayer_connection, atol=1e-4, rtol=1e-4,
                mistakes=SUBLAYER_MISTAKES, grad=("x", "weight", "bias"),  # the norm's are loaded, not passed
                hint_on_error="The test builds SublayerConnection(d_model, dropout), loads norm.weight "
                              "and norm.bias, and calls it in eval mode as module(x, sublayer).")
           for i, (shape, p) in enumerate([((2, 5, 8), 0.0), ((3, 4, 16), 0.0), ((2, 6, 8), 0.3)])],
)
