"""The check library of 07_residual judges in-process targets: right code
passes every check, each known mistake fails with a message that names it."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks import run
from autograder.checks import residual as rs


def esc(phrase):
    return "".join("\\" + c if c in "()[].*+?^$|{}\\" else c for c in phrase)


# ------------------------------------------------------------------ BasicBlock
class Block(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1, kind="ok"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if kind == "always_project" or (kind != "no_downsample" and (stride != 1 or in_channels != out_channels)):
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_channels))
        self.kind = kind

    def forward(self, x):
        identity = x
        x = self.relu(self.bn1(self.conv1(x)))
        if self.kind == "wrong_tensor":
            identity = x
        out = self.bn2(self.conv2(x))
        if self.downsample is not None:
            identity = self.downsample(identity)
        if self.kind == "relu_before_add":
            return self.relu(out) + identity
        return self.relu(out + identity)


def block(kind):
    return lambda *a, **kw: Block(*a, **kw, kind=kind)


def test_correct_block_passes():
    run(rs.basic_block_identity, block("ok"))
    run(rs.basic_block_downsample, block("ok"))


def test_reference_matches_the_torchvision_layout():
    names = [n for n, _ in rs.ReferenceBasicBlock(4, 8, 2).named_children()]
    assert names == ["conv1", "bn1", "relu", "conv2", "bn2", "downsample"]
    assert rs.ReferenceBasicBlock(4, 4, 1).downsample is None


@pytest.mark.parametrize("kind, check, phrase", [
    ("relu_before_add", "basic_block_identity", "ReLU is applied before the addition"),
    ("relu_before_add", "basic_block_downsample", "ReLU is applied before the addition"),
    ("wrong_tensor", "basic_block_identity", "adds the wrong tensor"),
    ("wrong_tensor", "basic_block_downsample", "applied to the wrong tensor"),
    ("no_downsample", "basic_block_downsample", "missing downsample"),
    ("always_project", "basic_block_identity", "downsample is None"),
])
def test_block_mistake_is_named(kind, check, phrase):
    with pytest.raises(AssertionError, match=esc(phrase)):
        run(getattr(rs, check), block(kind))


def test_block_with_a_parameter_free_shortcut_is_told_about_downsample():
    class PadBlock(Block):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__(in_channels, out_channels, stride, kind="no_downsample")
            self.out_channels, self.stride = out_channels, stride

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + rs.reference_zero_pad(x, self.out_channels, self.stride))
    with pytest.raises(AssertionError, match=esc("nn.Sequential(nn.Conv2d(in_channels")):
        run(rs.basic_block_downsample, PadBlock)


# ------------------------------------------------------------ zero_pad_shortcut
def zero_pad(kind="ok"):
    def pad(x, out_channels, stride):
        if out_channels < x.shape[1]:
            raise ValueError(f"out_channels={out_channels} is smaller than the {x.shape[1]} input channels")
        sub = x if kind == "no_subsampling" else x[:, :, ::stride, ::stride]
        extra = out_channels - x.shape[1]
        zeros = sub.new_zeros(sub.shape[0], extra, *sub.shape[2:])
        return torch.cat([zeros, sub] if kind == "front" else [sub, zeros], dim=1)
    return pad


def test_zero_pad_shortcut():
    run(rs.zero_pad_shortcut_values, zero_pad())
    with pytest.raises(AssertionError, match="not subsampled"):
        run(rs.zero_pad_shortcut_values, zero_pad("no_subsampling"))
    with pytest.raises(AssertionError, match="in front"):
        run(rs.zero_pad_shortcut_values, zero_pad("front"))


# ---------------------------------------------------------- SublayerConnection
class Sublayer(nn.Module):
    def __init__(self, d_model, dropout=0.0, kind="ok"):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.kind = kind

    def forward(self, x, sublayer):
        if self.kind == "pre_ln":
            return x + self.dropout(sublayer(self.norm(x)))
        if self.kind == "normed_shortcut":
            x = self.norm(x)
            return x + self.dropout(sublayer(x))
        return self.norm(x + self.dropout(sublayer(x)))


def sublayer(kind):
    """The adapter of the hidden test around a SublayerConnection of this kind."""
    return eval(rs.SUBLAYER_ADAPTER, {"torch": torch, "SublayerConnection": lambda *a, **kw: Sublayer(*a, **kw, kind=kind)})


def test_sublayer_connection():
    run(rs.sublayer_connection_post_ln, sublayer("ok"))
    with pytest.raises(AssertionError, match="this is pre-LN"):
        run(rs.sublayer_connection_post_ln, sublayer("pre_ln"))
    with pytest.raises(AssertionError, match=esc("carries norm(x) instead of x")):
        run(rs.sublayer_connection_post_ln, sublayer("normed_shortcut"))


def test_the_adapter_uses_the_checks_sublayer():
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 3, 4), torch.randn(4, 4), torch.randn(4)
    seen = {}

    class Spy(nn.Module):
        def __init__(self, d_model, dropout=0.0):
            super().__init__()
            self.norm = nn.LayerNorm(d_model)

        def forward(self, x, sublayer):
            seen["out"] = sublayer(x)
            return x
    adapter = eval(rs.SUBLAYER_ADAPTER, {"torch": torch, "SublayerConnection": Spy})
    adapter(x=x, weight=w, bias=b, norm_weight=torch.ones(4), norm_bias=torch.zeros(4), d_model=4)
    assert torch.allclose(seen["out"], rs.sublayer(x, w, b))


def test_post_ln_reference_matches_the_encoder_layer_of_pytorch():
    """Post-LN as nn.TransformerEncoderLayer(norm_first=False) computes its feed-forward half."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=False).eval()
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        h = layer.norm1(x + layer.self_attn(x, x, x, need_weights=False)[0])
        out = rs._norm(h + layer.linear2(F.relu(layer.linear1(h))), layer.norm2.weight, layer.norm2.bias)
        assert torch.allclose(out, layer(x), atol=1e-5)


def test_block_layout():
    run(rs.basic_block_layout, block("ok"))
    with pytest.raises(AssertionError, match="missing downsample"):
        run(rs.basic_block_layout, block("no_downsample"))

    class Renamed(Block):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__(in_channels, out_channels, stride)
            self.norm1 = self.bn1
            del self.bn1

        def forward(self, x):
            return x
    with pytest.raises(AssertionError, match="no parameter or buffer 'bn1.weight'"):
        run(rs.basic_block_layout, Renamed)
