"""Calling a learner's function or module on a check's inputs (the learner's side).

This runs where the learner's code runs (the sandboxed worker,
:mod:`.worker`) and in a hidden test cell's own process (:func:`autograder.checks.core.run`).
It holds no reference and no expected value: only how to call the target
(by position as COURSE_SPEC.md's contract says, :meth:`autograder.checks.core.Check.positional`),
with the state drawn from a seed, and how to take gradients through it.
"""
from __future__ import annotations

import math
import zlib
from typing import Any, Mapping, Sequence

import torch

Outputs = tuple  # a tuple of tensors (and floats) returned by the learner's code


def bind(values: Mapping[str, Any], names: tuple[str, ...]) -> tuple[list, dict]:
    """``(args, kwargs)``: the ``names`` in order by position, the rest by keyword.

    Raises KeyError when ``values`` lacks one of ``names`` (a check that
    leaves out a required argument).
    """
    args = [values[n] for n in names]
    return args, {k: v for k, v in values.items() if k not in names}


def as_outputs(value: Any) -> Outputs:
    """Normalise a learner's return value to a tuple (a tensor becomes a 1-tuple)."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def clone_inputs(inputs: Mapping[str, Any]) -> dict:
    """Copies of the inputs, so that in-place changes by one side cannot leak."""
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


#: Buffers whose values the references read (BatchNorm's running statistics):
#: drawn like parameters. Other buffers (masks, positional tables, counters)
#: keep the values the module gave them.
DRAWN_BUFFERS = ("running_mean", "running_var")


def draw_entry(key: str, like: torch.Tensor, seed: int) -> torch.Tensor:
    """The value of state entry ``key`` for ``seed``: the same in every process
    (seeded by the key's name, not Python's salted hash). Weights get a spread
    of 1/sqrt(fan-in), vectors 0.5; variances lie in [0.5, 1.5)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
    if key.rsplit(".", 1)[-1] == "running_var":
        return 0.5 + torch.rand(like.shape, generator=g, dtype=like.dtype)
    scale = 1 / math.sqrt(like[0].numel()) if like.dim() >= 2 and like.shape[0] else 0.5
    return torch.randn(like.shape, generator=g, dtype=like.dtype) * scale


def draw_state(module: torch.nn.Module, seed: int) -> None:
    """Overwrite the module's floating-point parameters and :data:`DRAWN_BUFFERS`
    with values drawn from ``seed`` (a shared parameter once, under its first name)."""
    buffers = [(n, b) for n, b in module.named_buffers() if n.rsplit(".", 1)[-1] in DRAWN_BUFFERS]
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *buffers]:
            if tensor.is_floating_point():
                tensor.copy_(draw_entry(name, tensor, seed))


def call_target(kind: str, target: Any, inputs: Mapping[str, Any], init: Mapping[str, Any] | None = None,
                init_seed: int = 0, mode: str = "eval", seed: int | None = None,
                args: Sequence[str] = (), init_args: Sequence[str] = (), grad_seed: int | None = None,
                grad_inputs: Sequence[str] | None = None):
    """Run the learner's ``target`` on ``inputs``: a function is called with them;
    a module class is built with ``init`` after ``torch.manual_seed(init_seed)``,
    given the state drawn from ``seed`` (unless None, :func:`draw_state`), put
    in ``mode`` ("eval" or "train") and called with them. The inputs named in
    ``args`` (the constructor's in ``init_args``) are passed by position, in
    that order, the others by keyword (:meth:`Check.positional`).

    Returns ``(outputs, state)``: a tuple of outputs and, for modules, the
    module's ``state_dict`` (``None`` for functions). With ``grad_seed``, it
    then calls the target once more with gradients on and returns
    ``(outputs, state, gradients)`` (:func:`learner_gradients`).
    """
    call_args, call_kwargs = bind(clone_inputs(inputs), tuple(args))
    module = None
    if kind == "module":
        torch.manual_seed(init_seed)
        init_pos, init_kw = bind(dict(init or {}), tuple(init_args))
        module = target(*init_pos, **init_kw)
        if seed is not None:
            draw_state(module, seed)
        module.train(mode == "train")
        with torch.no_grad():
            value = module(*call_args, **call_kwargs)
        state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        result = (as_outputs(value), state)
    else:
        result = (as_outputs(target(*call_args, **call_kwargs)), None)
    if grad_seed is None:
        return result
    try:
        grads = learner_gradients(module or target, inputs, args, grad_seed, module is not None, grad_inputs)
    except Exception as exc:
        grads = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return (*result, grads)


def differentiable(inputs: Mapping[str, Any], names: Sequence[str] | None = None) -> list[str]:
    """The inputs gradients are checked for: ``names`` (:attr:`Case.grad`), or
    else the floating-point tensors but running statistics (updated in place,
    never differentiated)."""
    if names is not None:
        return list(names)
    return [k for k, v in inputs.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and k not in DRAWN_BUFFERS]


def cotangent_loss(outputs: Outputs, grad_seed: int):
    """sum_i <output_i, c_i> with random c_i drawn from ``grad_seed`` for each
    floating-point output (drawn for every one, so both sides draw alike);
    None when no output depends on anything that requires a gradient."""
    g = torch.Generator().manual_seed(grad_seed)
    loss = None
    for out in outputs:
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            c = torch.randn(out.shape, generator=g, dtype=out.dtype)
            if out.requires_grad:
                loss = (out * c).sum() if loss is None else loss + (out * c).sum()
    return loss


def gradients(loss, leaves: Mapping[str, torch.Tensor]) -> dict:
    """name -> d loss / d leaf, None where no gradient reaches the leaf."""
    wanted = {k: v for k, v in leaves.items() if v.requires_grad}
    grads = dict.fromkeys(leaves)
    if loss is not None and wanted:
        found = torch.autograd.grad(loss, list(wanted.values()), allow_unused=True)
        grads.update({k: None if g is None else g.detach() for k, g in zip(wanted, found)})
    return grads


def learner_gradients(call, inputs: Mapping[str, Any], args: Sequence[str], grad_seed: int, is_module: bool,
                      names: Sequence[str] | None = None) -> dict:
    """Gradients of :func:`cotangent_loss` through the learner's function or
    module (built and in its mode) with respect to the inputs ``names``
    (:func:`differentiable`) and the module's parameters:
    ``{"input x": ..., "parameter W_q.weight": ...}``."""
    leaves = clone_inputs(inputs)
    for name in differentiable(leaves, names):
        leaves[name].requires_grad_(True)
    call_args, call_kwargs = bind(leaves, tuple(args))
    with torch.enable_grad():
        loss = cotangent_loss(as_outputs(call(*call_args, **call_kwargs)), grad_seed)
    named = {f"input {k}": leaves[k] for k in differentiable(leaves, names)}
    if is_module:
        named.update({f"parameter {k}": p for k, p in call.named_parameters() if p.is_floating_point()})
    return gradients(loss, named)


