"""Checks for assignment 06_normalization (COURSE_SPEC.md).

References come from PyTorch: ``F.layer_norm`` (Ba et al. 2016) for
``layer_norm``, ``F.batch_norm`` (Ioffe and Szegedy 2015) for ``batch_norm``,
including its in-place update of the running statistics with the *unbiased*
batch variance, and ``nn.LayerNorm`` with the learner's ``state_dict`` loaded
for ``LayerNorm``.

``batch_norm`` updates ``running_mean`` and ``running_var`` in place and returns
only the normalised tensor; the hidden test passes the adapter
``lambda **kw: (batch_norm(**kw), kw["running_mean"], kw["running_var"])`` so
that the updated statistics become outputs.  For ``LayerNorm`` it passes a
factory that fills ``weight`` and ``bias`` with random values after
construction (``nn.init.normal_``), so that the test sees whether the forward
pass uses them; the references read them from the module's ``state_dict``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .core import Case, Check, Mistake

# ------------------------------------------------------------------ layer_norm
UNBIASED_LN = ("the variance is the unbiased one (divided by d - 1, torch.var's default); "
               "LayerNorm uses the biased variance: x.var(dim=-1, unbiased=False, keepdim=True)")
EPS_OUTSIDE = ("eps is added outside the square root: divide by torch.sqrt(var + eps), "
               "not by torch.sqrt(var) + eps")
BATCH_AXIS = ("the statistics are taken over the batch axis (dim=0): LayerNorm normalises "
              "each sample over its own features, the last dimension (dim=-1, keepdim=True)")
BN_AXES = ("the statistics are taken per feature over every sample and position (BatchNorm's "
           "axes): LayerNorm normalises each sample over its own features (dim=-1)")
NO_AFFINE = "gamma and beta are not applied: return gamma * x_hat + beta"
SWAPPED_AFFINE = "gamma and beta are swapped: the scale is gamma and the shift is beta"


def _ln(x, gamma, beta, eps, dims=(-1,), unbiased=False, eps_outside=False, affine=True, swap=False):
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=unbiased, keepdim=True)
    std = var.sqrt() + eps if eps_outside else (var + eps).sqrt()
    x_hat = (x - mean) / std
    if not affine:
        return x_hat
    return beta * x_hat + gamma if swap else gamma * x_hat + beta


def _ln_mistakes(params):
    """LayerNorm mistakes; ``params(args)`` -> (x, gamma, beta, eps)."""
    def wrong(**options):
        def output(*args, **kw):
            x, gamma, beta, eps = params(*args, **kw)
            return _ln(x, gamma, beta, eps, **options)
        return output
    return (
        Mistake("unbiased_variance", wrong(unbiased=True), UNBIASED_LN),
        Mistake("eps_outside_sqrt", wrong(eps_outside=True), EPS_OUTSIDE),
        Mistake("batch_axis", wrong(dims=(0,)), BATCH_AXIS),
        Mistake("batchnorm_axes", wrong(dims=(0, 1)), BN_AXES),
        Mistake("no_affine", wrong(affine=False), NO_AFFINE),
        Mistake("swapped_affine", wrong(swap=True), SWAPPED_AFFINE),
    )


LN_FUNCTION_MISTAKES = _ln_mistakes(lambda x, gamma, beta, eps=1e-5: (x, gamma, beta, eps))


def reference_layer_norm(x, gamma, beta, eps=1e-5):
    """``F.layer_norm`` over the last dimension."""
    return F.layer_norm(x, x.shape[-1:], gamma, beta, eps)


def _ln_inputs(shape, scale=1.0, eps=None):
    def inputs(g):
        d = shape[-1]
        out = dict(x=torch.randn(*shape, generator=g) * scale + 0.5 * scale,
                   gamma=1.0 + 0.5 * torch.randn(d, generator=g),
                   beta=0.5 * torch.randn(d, generator=g))
        if eps is not None:
            out["eps"] = eps
        return out
    return inputs


# [batch, seq_len, d_model] and friends.  The small-scale case (features of
# order 1e-3, variance 1e-6, comparable to eps) and the large-eps case make
# an eps outside the square root visible.
LN_SHAPES = [((4, 8), 1.0, None), ((2, 5, 8), 1.0, None), ((3, 4, 16), 1.0, 0.5),
             ((2, 3, 6), 1e-3, None), ((2, 2, 3, 4), 1.0, None)]


def _ln_name(shape, scale, eps):
    return (f"x {list(shape)}" + (f", features of scale {scale:g}" if scale != 1.0 else "")
            + (f", eps={eps}" if eps is not None else ""))


layer_norm_matches_builtin = Check(
    name="layer_norm_matches_builtin",
    target="layer_norm",
    cases=[Case(name=_ln_name(*s), inputs=_ln_inputs(*s), reference=reference_layer_norm,
                seed=600 + i, atol=1e-4, rtol=1e-4, mistakes=LN_FUNCTION_MISTAKES)
           for i, s in enumerate(LN_SHAPES)],
)

# ------------------------------------------------------------------ batch_norm
NOT_UPDATED = ("the running statistics were not updated in place: in training, assign into "
               "the given tensors, e.g. running_mean.mul_(1 - momentum).add_(momentum * mean) "
               "(running_mean = ... only rebinds a local name)")
BIASED_RUNNING = ("running_var was updated with the biased batch variance; the running "
                  "estimate uses the unbiased one (divided by n - 1, n = values per channel), "
                  "as F.batch_norm does")
MOMENTUM_SWAPPED = ("momentum weighs the wrong term: running = (1 - momentum) * running + "
                    "momentum * batch_statistic")
EVAL_BATCH_STATS = ("in evaluation mode (training=False) the output was normalised with the "
                    "batch's own statistics; use running_mean and running_var instead")
IGNORES_TRAINING = ("the training flag is ignored: with training=False, normalise with "
                    "running_mean and running_var and leave them unchanged")
TRAIN_RUNNING_STATS = ("in training mode the output was normalised with the running statistics; "
                       "normalise with the statistics of the current batch")
UNBIASED_NORMALISE = ("the batch was normalised with the unbiased variance; normalise with the "
                      "biased one (unbiased=False) and use the unbiased one only to update running_var")
PER_POSITION = ("for x [N, C, L] the statistics were taken per (channel, position) over dim 0 "
                "only; BatchNorm's statistics are per channel, over dims (0, 2)")
PER_SAMPLE = ("the statistics are taken per sample over its features (LayerNorm's axes); "
              "BatchNorm normalises each channel over the batch (dim 0, and dim 2 for [N, C, L])")


def _bn(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5, *,
        dims=None, norm_unbiased=False, update="unbiased", momentum_swapped=False,
        eval_batch_stats=False, train_running_stats=False):
    """A plain-tensor BatchNorm with switches for the known mistakes.

    Returns (output, running_mean, running_var) after the update.
    """
    if dims is None:
        dims = (0,) if x.dim() == 2 else (0, 2)
    shape = [1, -1] + [1] * (x.dim() - 2)
    rm, rv = running_mean.clone(), running_var.clone()
    use_batch = training and not train_running_stats or (not training and eval_batch_stats)
    if use_batch:
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=norm_unbiased, keepdim=True)
    else:
        mean, var = rm.view(shape), rv.view(shape)
    y = (x - mean) / torch.sqrt(var + eps)
    y = y * gamma.view(shape) + beta.view(shape)
    if training and update != "none":
        bmean = x.mean(dim=(0,) if x.dim() == 2 else (0, 2))
        bvar = x.var(dim=(0,) if x.dim() == 2 else (0, 2), unbiased=(update == "unbiased"))
        a, b = (momentum, 1 - momentum) if momentum_swapped else (1 - momentum, momentum)
        rm, rv = a * rm + b * bmean, a * rv + b * bvar
    return y, rm, rv


def reference_batch_norm(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """(output, running_mean, running_var) from ``F.batch_norm``, which updates
    the running statistics in place (they are copies here)."""
    y = F.batch_norm(x, running_mean, running_var, gamma, beta, training, momentum, eps)
    return y, running_mean, running_var


def _bn_mistake(name, message, **options):
    return Mistake(name, lambda **kw: _bn(**kw, **options), message)


BN_MISTAKES = (
    _bn_mistake("not_updated", NOT_UPDATED, update="none"),
    _bn_mistake("biased_running_var", BIASED_RUNNING, update="biased"),
    _bn_mistake("momentum_swapped", MOMENTUM_SWAPPED, momentum_swapped=True),
    _bn_mistake("eval_batch_stats", EVAL_BATCH_STATS, eval_batch_stats=True),
    _bn_mistake("eval_batch_stats_not_updated", EVAL_BATCH_STATS, eval_batch_stats=True, update="none"),
    Mistake("ignores_training", lambda training, **kw: _bn(training=True, **kw), IGNORES_TRAINING),
    _bn_mistake("train_running_stats", TRAIN_RUNNING_STATS, train_running_stats=True),
    _bn_mistake("unbiased_normalise", UNBIASED_NORMALISE, norm_unbiased=True),
    _bn_mistake("per_position", PER_POSITION, dims=(0,)),
    _bn_mistake("per_sample", PER_SAMPLE, dims=(1,)),
)


def _bn_inputs(shape, training, momentum=None, eps=None):
    def inputs(g):
        C = shape[1]
        out = dict(x=torch.randn(*shape, generator=g) * 2.0 + 1.0,
                   gamma=1.0 + 0.5 * torch.randn(C, generator=g),
                   beta=0.5 * torch.randn(C, generator=g),
                   running_mean=0.5 * torch.randn(C, generator=g),
                   running_var=0.5 + torch.rand(C, generator=g),
                   training=training)
        if momentum is not None:
            out["momentum"] = momentum
        if eps is not None:
            out["eps"] = eps
        return out
    return inputs


def _bn_name(shape, training, momentum=None, eps=None):
    return (f"x {list(shape)}, training={training}" + (f", momentum={momentum}" if momentum is not None else "")
            + (f", eps={eps}" if eps is not None else ""))


def _bn_cases(specs, seed, measure, outputs, reference):
    return [Case(name=_bn_name(*s), inputs=_bn_inputs(*s), reference=reference, seed=seed + i,
                 measure=measure, outputs=outputs, atol=1e-4, rtol=1e-4, mistakes=BN_MISTAKES)
            for i, s in enumerate(specs)]


# Small batches (N = 4, or N * L = 6) so that the unbiased and biased
# variances differ by a factor 4/3 or 6/5.
TRAIN_SPECS = [((4, 3), True), ((2, 4, 3), True), ((8, 5), True, 0.5), ((3, 2, 5), True, 0.3, 0.1)]
EVAL_SPECS = [((4, 3), False), ((2, 4, 3), False), ((5, 6, 2), False, 0.5, 0.1)]

batch_norm_training = Check(
    name="batch_norm_training",
    target="batch_norm",
    cases=_bn_cases(TRAIN_SPECS, 610, lambda out, inputs: (out[0],), ("output",),
                    lambda **kw: reference_batch_norm(**kw)[0]),
)

batch_norm_running_stats = Check(
    name="batch_norm_running_stats",
    target="batch_norm",
    cases=_bn_cases(TRAIN_SPECS, 620, lambda out, inputs: (out[1], out[2]), ("running_mean", "running_var"),
                    lambda **kw: reference_batch_norm(**kw)[1:]),
)

batch_norm_eval = Check(
    name="batch_norm_eval",
    target="batch_norm",
    cases=_bn_cases(EVAL_SPECS, 630, None, ("output", "running_mean", "running_var"),
                    reference_batch_norm),
)

# ------------------------------------------------------------------ LayerNorm
def _state_ln(state, x):
    """The learner's state loaded into ``nn.LayerNorm`` (KeyError if a name is missing)."""
    return torch.func.functional_call(nn.LayerNorm(x.shape[-1]), {"weight": state["weight"], "bias": state["bias"]},
                                      (x,))


def _fresh_ln(state, x):
    """A fresh layer: weight ones and bias zeros, whatever the state holds
    (KeyError if the state has no weight or bias)."""
    state["weight"], state["bias"]
    return F.layer_norm(x, x.shape[-1:])


def _state_ln_with_eps(eps):
    def reference(state, x):
        return F.layer_norm(x, x.shape[-1:], state["weight"], state["bias"], eps)
    return reference


def _ln_module_mistakes(eps):
    return _ln_mistakes(lambda state, x: (x, state["weight"], state["bias"], eps))


def _ln_module_case(name, shape, seed, eps=None, scale=1.0, reference=None):
    init = dict(d_model=shape[-1]) if eps is None else dict(d_model=shape[-1], eps=eps)
    return Case(name=name, init=init, init_seed=seed, seed=seed,
                inputs=lambda g: dict(x=torch.randn(*shape, generator=g) * scale + 0.5 * scale),
                reference=reference or _state_ln_with_eps(1e-5 if eps is None else eps),
                atol=1e-4, rtol=1e-4, mistakes=_ln_module_mistakes(1e-5 if eps is None else eps))


layer_norm_module_initial = Check(
    name="layer_norm_module_initial",
    target="LayerNorm",
    kind="module",
    cases=[Case(name="a fresh LayerNorm(8): weight ones, bias zeros", init=dict(d_model=8),
                inputs=lambda g: dict(x=torch.randn(2, 5, 8, generator=g) + 0.5), seed=640,
                reference=_fresh_ln, keep_init=True,
                atol=1e-4, rtol=1e-4, mistakes=_ln_module_mistakes(1e-5))],
)

layer_norm_module_loads = Check(
    name="layer_norm_module_loads",
    target="LayerNorm",
    kind="module",
    cases=[_ln_module_case("d_model=8, x [2, 5, 8], state_dict loaded into nn.LayerNorm(8)",
                           (2, 5, 8), 641, reference=_state_ln),
           _ln_module_case("d_model=16, x [3, 4, 16]", (3, 4, 16), 642),
           _ln_module_case("d_model=6, eps=0.1, x [2, 3, 6]", (2, 3, 6), 643, eps=0.1),
           _ln_module_case("d_model=6, x [2, 3, 6] of scale 1e-3", (2, 3, 6), 644, scale=1e-3)],
)

# The eps cases alone (features of scale 1e-3, or eps = 0.5), for the hand-check cell.
layer_norm_eps = Check(
    name="layer_norm_eps",
    target="layer_norm",
    cases=[Case(name=_ln_name(*s), inputs=_ln_inputs(*s), reference=reference_layer_norm,
                seed=605 + i, atol=1e-4, rtol=1e-4, mistakes=LN_FUNCTION_MISTAKES)
           for i, s in enumerate([LN_SHAPES[3], LN_SHAPES[2], ((5, 4), 1e-2, None)])],
)
