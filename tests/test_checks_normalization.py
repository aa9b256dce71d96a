"""The check library of 06_normalization judges in-process targets: right code
passes every check, each known mistake fails with a message that names it."""
import pytest
import torch
from torch import nn

from autograder.checks import run
from autograder.checks import normalization as nz


def with_running_stats(batch_norm):
    """The adapter that the hidden tests pass (see the solution notebook)."""
    return lambda *args, **kw: (batch_norm(*args, **kw), args[3], args[4])


def perturbed(LayerNorm):
    """The factory that the hidden tests pass: random weight and bias after construction."""
    return lambda *args, **init: (lambda m: (nn.init.normal_(m.weight, 1.0, 0.5), nn.init.normal_(m.bias, 0.0, 0.5),
                                      m)[-1])(LayerNorm(*args, **init))


def esc(phrase):
    return "".join("\\" + c if c in "()[].*+?^$|{}\\" else c for c in phrase)


# ------------------------------------------------------------------ layer_norm
def layer_norm(kind="ok"):
    def ln(x, gamma, beta, eps=1e-5):
        dims = {"batch_axis": 0, "bn_axes": (0, 1)}.get(kind, -1)
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=(kind == "unbiased"), keepdim=True)
        std = var.sqrt() + eps if kind == "eps_outside" else (var + eps).sqrt()
        return gamma * (x - mean) / std + beta
    return ln


def test_correct_layer_norm_passes():
    run(nz.layer_norm_matches_builtin, layer_norm())


@pytest.mark.parametrize("kind, phrase", [
    ("unbiased", "unbiased=False"),
    ("eps_outside", "eps is added outside the square root"),
    ("batch_axis", "over the batch axis (dim=0)"),
    ("bn_axes", "BatchNorm's axes"),
])
def test_layer_norm_mistake_is_named(kind, phrase):
    with pytest.raises(AssertionError, match=esc(phrase)):
        run(nz.layer_norm_matches_builtin, layer_norm(kind))


# ------------------------------------------------------------------ batch_norm
def batch_norm(kind="ok"):
    def bn(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
        dims = (0,) if x.dim() == 2 else (0, 2)
        shape = [1, -1] + [1] * (x.dim() - 2)
        if training or kind == "eval_batch_stats":
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, unbiased=False)
            if training and kind != "not_updated":
                var_run = x.var(dim=dims, unbiased=(kind != "biased_running"))
                if kind == "rebinds":
                    running_mean = (1 - momentum) * running_mean + momentum * mean
                    running_var = (1 - momentum) * running_var + momentum * var_run
                else:
                    running_mean.mul_(1 - momentum).add_(momentum * mean)
                    running_var.mul_(1 - momentum).add_(momentum * var_run)
        else:
            mean, var = running_mean, running_var
        x_hat = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)
        return gamma.view(shape) * x_hat + beta.view(shape)
    return bn


def test_correct_batch_norm_passes():
    run(nz.batch_norm_training, batch_norm())
    run(nz.batch_norm_running_stats, with_running_stats(batch_norm()))
    run(nz.batch_norm_eval, with_running_stats(batch_norm()))


@pytest.mark.parametrize("kind, check, phrase", [
    ("not_updated", "batch_norm_running_stats", "not updated in place"),
    ("rebinds", "batch_norm_running_stats", "not updated in place"),
    ("biased_running", "batch_norm_running_stats", "biased batch variance"),
    ("eval_batch_stats", "batch_norm_eval", "batch's own statistics"),
])
def test_batch_norm_mistake_is_named(kind, check, phrase):
    with pytest.raises(AssertionError, match=esc(phrase)):
        run(getattr(nz, check), with_running_stats(batch_norm(kind)))


def test_batch_norm_ignoring_the_flag_is_named():
    def always_training(x, gamma, beta, running_mean, running_var, training, **kw):
        return batch_norm()(x, gamma, beta, running_mean, running_var, True, **kw)
    with pytest.raises(AssertionError, match="training flag is ignored"):
        run(nz.batch_norm_eval, with_running_stats(always_training))


def test_batch_norm_with_unbiased_normalisation_is_named():
    def unbiased(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
        dims = (0,) if x.dim() == 2 else (0, 2)
        shape = [1, -1] + [1] * (x.dim() - 2)
        mean, var = x.mean(dims), x.var(dims)  # torch.var's default: unbiased
        x_hat = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)
        return gamma.view(shape) * x_hat + beta.view(shape)
    with pytest.raises(AssertionError, match="normalised with the unbiased variance"):
        run(nz.batch_norm_training, unbiased)


# ------------------------------------------------------------------ LayerNorm
class LayerNorm(nn.Module):
    def __init__(self, d_model, eps=1e-5, kind="ok"):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))
        self.eps, self.kind = eps, kind

    def forward(self, x):
        return layer_norm(self.kind)(x, self.weight, self.bias, self.eps)


def test_correct_layer_norm_module_passes():
    run(nz.layer_norm_module_initial, LayerNorm)
    run(nz.layer_norm_module_loads, perturbed(LayerNorm))


def test_layer_norm_module_mistakes_are_named():
    with pytest.raises(AssertionError, match=esc("unbiased=False")):
        run(nz.layer_norm_module_loads, perturbed(lambda *a, **kw: LayerNorm(*a, **kw, kind="unbiased")))
    with pytest.raises(AssertionError, match="outside the square root"):
        run(nz.layer_norm_module_loads, perturbed(lambda *a, **kw: LayerNorm(*a, **kw, kind="eps_outside")))


def test_layer_norm_module_with_other_names_is_reported():
    class Named(nn.Module):
        def __init__(self, d_model, eps=1e-5):
            super().__init__()
            self.gamma = nn.Parameter(torch.ones(d_model))
            self.beta = nn.Parameter(torch.zeros(d_model))

        def forward(self, x):
            return layer_norm()(x, self.gamma, self.beta)
    with pytest.raises(AssertionError, match="has no attribute 'weight'"):
        run(nz.layer_norm_module_loads, perturbed(Named))
    with pytest.raises(AssertionError, match="has no parameter or buffer 'weight'"):
        run(nz.layer_norm_module_initial, Named)
