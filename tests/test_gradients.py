"""Gradients are checked on the trusted side: an implementation whose outputs
are right but through which no gradient flows, or a wrong one, fails with a
message that names what breaks them; correct ones (functions and modules)
pass. The oracle is autograd through PyTorch's own built-ins."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks import multi_head as mh
from autograder.checks import normalization as nz
from autograder.checks import run
from autograder.checks import scaled_attention as sa


def layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * gamma + beta


def test_a_correct_function_passes_with_its_gradients():
    run(nz.layer_norm_matches_builtin, layer_norm)


@pytest.mark.parametrize("broken", [
    lambda x, gamma, beta, eps=1e-5: layer_norm(x, gamma, beta, eps).detach(),
    lambda x, gamma, beta, eps=1e-5: torch.tensor(layer_norm(x, gamma, beta, eps).detach().numpy()),
    lambda x, gamma, beta, eps=1e-5: layer_norm(x.detach(), gamma, beta, eps),
], ids=["detached", "through_numpy", "input_detached"])
def test_right_values_without_gradients_fail(broken):
    with pytest.raises(AssertionError, match="no gradient flows back to input"):
        run(nz.layer_norm_matches_builtin, broken)


def test_a_wrong_gradient_is_named():
    class StraightThrough(torch.autograd.Function):  # right values, the identity's gradient
        @staticmethod
        def forward(ctx, x, gamma, beta):
            return layer_norm(x, gamma, beta)

        @staticmethod
        def backward(ctx, g):
            return g, g.sum(tuple(range(g.dim() - 1))), g.sum(tuple(range(g.dim() - 1)))

    with pytest.raises(AssertionError, match="the gradient with respect to input x differs"):
        run(nz.layer_norm_matches_builtin, lambda x, gamma, beta, eps=1e-5: StraightThrough.apply(x, gamma, beta))


def attention(queries, keys, values):
    w = torch.softmax(queries @ keys.transpose(-2, -1) / math.sqrt(keys.shape[-1]), dim=-1)
    return w @ values, w


def test_weights_detached_from_the_keys_fail():
    def detached_scores(queries, keys, values):
        w = torch.softmax(queries @ keys.detach().transpose(-2, -1) / math.sqrt(keys.shape[-1]), dim=-1)
        return w @ values, w
    run(sa.sdpa_matches_builtin, attention)
    with pytest.raises(AssertionError, match="input keys"):
        run(sa.sdpa_matches_builtin, detached_scores)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, dropout=0.0, bias=True, detach_weights=False):
        super().__init__()
        self.h, self.detach_weights = num_heads, detach_weights
        self.W_q, self.W_k, self.W_v, self.W_o = (nn.Linear(d_model, d_model, bias=bias) for _ in range(4))

    def forward(self, q, k, v, mask=None):
        B, T, d = q.shape
        split = lambda t: t.view(B, -1, self.h, d // self.h).transpose(1, 2)  # noqa: E731
        s = split(self.W_q(q)) @ split(self.W_k(k)).transpose(-2, -1) / math.sqrt(d // self.h)
        if mask is not None:
            s = s.masked_fill(~(mask.unsqueeze(1) if mask.dim() == 3 else mask), float("-inf"))
        w = torch.softmax(s, -1)
        if self.detach_weights:
            w = w.detach()
        out = (w @ split(self.W_v(v))).transpose(1, 2).reshape(B, T, d)
        return self.W_o(out), w


def test_module_parameters_get_their_gradients():
    run(mh.mha_matches_builtin, MultiHeadAttention)  # the reference: nn.MultiheadAttention's autograd
    with pytest.raises(AssertionError, match="no gradient flows back to (input query|input key|parameter W_q)"):
        run(mh.mha_matches_builtin, lambda *a, **kw: MultiHeadAttention(*a, **kw, detach_weights=True))


def test_the_reference_gradients_come_from_pytorch():
    # The oracle itself: the MHA reference differentiates through nn.MultiheadAttention.
    torch.manual_seed(0)
    builtin = nn.MultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(2, 3, 8, requires_grad=True)
    state = {f"W_{n}.weight": w for n, w in zip("qkv", builtin.in_proj_weight.detach().chunk(3))}
    state.update({f"W_{n}.bias": b for n, b in zip("qkv", builtin.in_proj_bias.detach().chunk(3))})
    state.update({"W_o.weight": builtin.out_proj.weight.detach(), "W_o.bias": builtin.out_proj.bias.detach()})
    ours = mh.reference_mha(2)(state, x, x, x)[0].sum()
    (grad_ours,) = torch.autograd.grad(ours, x)
    (grad_builtin,) = torch.autograd.grad(builtin(x, x, x)[0].sum(), x)
    assert torch.allclose(grad_ours, grad_builtin, atol=1e-6)
