"""Declarative checks that hidden test cells run against a learner's code.

A :class:`Check` is a list of :class:`Case` objects for one graded target (a
function or a class).  Every case says, as data plus small pure functions:

* ``inputs(generator)``: the seeded inputs (a dict of tensors and numbers);
* ``reference(**inputs)`` or, for modules, ``reference(state, **inputs)``: the
  expected output, computed here from PyTorch built-ins or from a reference
  implementation that lives in this package, never from the learner's code;
  a module's parameters are drawn from a seed before it runs (state in), and
  the reference recomputes that state itself rather than trusting the
  ``state_dict`` the module reports (see :func:`trusted_state`);
* ``atol``/``rtol``: the tolerance;
* ``mistakes``: known wrong implementations, so that a mismatch can be reported
  as the mistake it most likely is;
* or, for bad arguments, ``raises``: the exception the target must raise.

Running a case is split in two halves so that a later stage can run them in
different processes: :func:`call_target` runs the learner's code on the inputs
and returns plain tensors, and :func:`judge` compares them with the reference.
:func:`run` does both in one process, which is what a hidden test cell does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from ..learner_side.call import (Outputs, draw_entry, as_outputs, call_target, clone_inputs, cotangent_loss,
                                 differentiable, gradients)
from . import contract


@dataclass(frozen=True)
class Mistake:
    """A known wrong implementation: ``output`` computes what it would return."""

    name: str
    output: Callable[..., Any]
    message: str


@dataclass(frozen=True)
class Case:
    """One set of inputs for a target, with its reference and tolerance.

    For a module target, ``init`` holds the constructor's keyword arguments and
    ``init_seed`` the seed set before construction; its parameters are then
    redrawn (:func:`~autograder.learner_side.call.draw_state`), and ``reference`` and the mistakes'
    ``output`` receive that state first. ``keep_init`` checks the module as
    built instead (a seed oracle, a fresh layer): nothing is redrawn and the
    reference receives the state the module reports.
    ``outputs`` names the returned values (e.g. ``("context", "weights")``).
    ``measure(outputs, inputs)``, when given, maps the learner's outputs to the
    quantities that ``reference`` predicts (e.g. the row sums of the weights),
    for properties; ``inputs`` are the case's own copies.
    ``raises`` (an exception class name, e.g. "ValueError") makes the case one
    of bad arguments: the target must raise it, with a message containing
    ``error_names`` (the bad argument's name); ``reference`` is then None.
    """

    name: str
    inputs: Callable[[torch.Generator], dict]
    reference: Callable[..., Any] | None
    outputs: Sequence[str] = ("output",)
    atol: float = 1e-5
    rtol: float = 1e-4
    seed: int = 0
    init: Mapping[str, Any] | None = None
    init_seed: int = 0
    mode: str = "eval"
    keep_init: bool = False
    mistakes: Sequence[Mistake] = ()
    hint_on_error: str = ""
    measure: Callable[[Outputs, Mapping[str, Any]], Any] | None = None
    raises: str = ""
    error_names: str = ""
    # Gradients checked: True for every differentiable input (:func:`differentiable`), a tuple
    # of input names for only those, False where the reference is not differentiable.
    grad: bool | tuple[str, ...] = True
    # Partial credit: a case in a group of its check's ``groups`` earns that group's share of the
    # cell's points when every case of the group passes; a case in no group must pass for any.
    group: str = ""


@dataclass(frozen=True)
class Check:
    """A named group of cases for one target; one hidden test cell runs one check.

    The target is called positionally except for the keyword arguments the
    contract names (:mod:`.contract`): ``args`` (for a module, its forward's)
    and ``init_args`` (its constructor's) are the names passed by position,
    by default the required parameters of ``target`` in
    :data:`.contract.SIGNATURES`; a check whose target is a wrapper of its
    own (called by keyword) sets them to ``()``.

    ``groups`` gives partial credit: group name -> weight; the cell scores
    its points times the weight of the groups whose cases all passed over the
    weight of all groups (:attr:`Case.group`).
    """

    name: str
    target: str
    cases: Sequence[Case]
    kind: str = "function"  # or "module"
    args: tuple[str, ...] | None = None
    init_args: tuple[str, ...] | None = None
    groups: Mapping[str, float] = field(default_factory=dict)

    def positional(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``(args, init_args)``: the names passed by position to the call and the constructor."""
        if self.kind == "module":
            args = self.args if self.args is not None else contract.positional(self.target, "forward")
            init = self.init_args if self.init_args is not None else contract.positional(self.target)
            return args, init
        return (self.args if self.args is not None else contract.positional(self.target)), ()


def make_inputs(case: Case, salt: int = 0) -> dict:
    """The case's inputs, drawn from a generator seeded with ``case.seed + salt``.

    A grader passes a secret ``salt`` so that a learner cannot know the inputs.
    """
    generator = torch.Generator().manual_seed(case.seed + salt)
    return case.inputs(generator)


def child_generator(g: torch.Generator) -> torch.Generator:
    """A generator for a target that takes one (``generator=``), seeded from
    the case's generator, so that its draws follow the grader's secret salt."""
    return torch.Generator().manual_seed(int(torch.randint(2**62, (), generator=g)))


def state_seed(check: Check, case: Case, salt: int = 0) -> int | None:
    """The seed of a module case's drawn state (None: keep the module's own)."""
    return None if check.kind != "module" or case.keep_init else case.seed + salt


def trusted_state(reported: Mapping[str, Any], seed: int) -> dict:
    """The state a module must have run with after :func:`~autograder.learner_side.call.draw_state`, computed
    from the reported names and shapes only: every floating-point entry is
    drawn here (entries the module reports as one shared tensor take the first
    one's draw); other entries (integer counters, boolean masks) are kept.

    A module that ignores the drawn values, or reports a forged state, is
    judged against the state it should have had, so it fails.
    """
    state: dict[str, Any] = {}
    firsts: list[tuple[str, torch.Tensor]] = []
    for key, value in reported.items():
        if not (isinstance(value, torch.Tensor) and value.is_floating_point()):
            state[key] = value
            continue
        first = next((k for k, v in firsts if v.shape == value.shape and v.dtype == value.dtype
                      and torch.equal(v, value)), None)
        if first is None:
            firsts.append((key, value))
        state[key] = state[first] if first else draw_entry(key, value, seed)
    return state


def grad_inputs(case: Case) -> list[str] | None:
    """The input names of :attr:`Case.grad` (None: every differentiable input)."""
    return None if case.grad is True else list(case.grad or ())


def wants_gradients(check: Check, case: Case) -> bool:
    """Whether a case's gradients are checked: a reference value compared in
    evaluation mode (not a property, a seed oracle or bad arguments)."""
    return bool(case.grad) and not (case.raises or case.measure or case.keep_init or case.mode != "eval")


def judge_gradients(check: Check, case: Case, inputs: Mapping[str, Any], state, seed: int | None,
                    grads: Mapping[str, Any], grad_seed: int) -> None:
    """Compare the learner's gradients (:func:`~autograder.learner_side.call.learner_gradients`) with the
    reference's, computed here by autograd through ``case.reference`` on this
    process's copies of the inputs and of the trusted state. A gradient the
    reference has and the learner's code does not is named; where the
    reference has none, nothing is required. Raises AssertionError."""
    where = f"{check.target} ({case.name})"
    if "error" in grads:
        if "in-place operation" in grads["error"]:
            raise AssertionError(f"{where} modifies an input in place (COURSE_SPEC.md: inputs are never "
                                 f"modified in place unless stated); autograd says {grads['error']}")
        raise AssertionError(f"{where}: computing its gradients raised {grads['error']}")
    names = grad_inputs(case)
    leaves = clone_inputs(inputs)
    for name in differentiable(leaves, names):
        leaves[name].requires_grad_(True)
    named = {f"input {k}": leaves[k] for k in differentiable(leaves, names)}
    args = ()
    if check.kind == "module":
        state = dict(trusted_state(state, seed) if seed is not None else state)
        made: dict[int, torch.Tensor] = {}  # tied entries stay one tensor, so their gradients add up
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and (f"parameter {key}" in grads or id(value) in made):
                state[key] = made.setdefault(id(value), value.detach().requires_grad_(True))
                if f"parameter {key}" in grads:
                    named[f"parameter {key}"] = state[key]
        args = (state,)
    with torch.enable_grad():
        loss = cotangent_loss(as_outputs(case.reference(*args, **leaves)), grad_seed)
    want = gradients(loss, named)
    atol, rtol = 10 * case.atol + 1e-5, 10 * case.rtol
    for name, w in want.items():
        if w is None:
            continue
        g = grads.get(name)
        if not isinstance(g, torch.Tensor):
            raise AssertionError(f"{where}: no gradient flows back to {name}, so it could not be trained: "
                                 f"the output is cut off from it (torch.no_grad, .detach(), .item(), .numpy(), "
                                 f"torch.tensor(...) of a result, or an integer or boolean detour break the graph)")
        if tuple(g.shape) != tuple(w.shape) or not torch.allclose(g, w, atol=atol, rtol=rtol):
            diff = (g - w).abs().max().item() if g.shape == w.shape else "shape " + str(list(g.shape))
            raise AssertionError(f"{where}: the gradient with respect to {name} differs from the reference's "
                                 f"(max abs difference {diff if isinstance(diff, str) else f'{diff:.3g}'}), "
                                 f"although the outputs match: a value is computed outside autograd "
                                 f"(in place on a detached copy, or through a constant)")


def put(module: torch.nn.Module, name: str, value: torch.Tensor) -> None:
    """Make ``value`` itself the parameter ``name`` (dotted) of ``module``, in
    place of a copy, so that a reference built from a PyTorch module passes
    gradients back to the state it was given."""
    *path, leaf = name.split(".")
    for part in path:
        module = getattr(module, part)
    delattr(module, leaf)
    setattr(module, leaf, value)


def _expected(check: Check, case: Case, compute: Callable, inputs, state) -> Outputs:
    args = (state,) if check.kind == "module" else ()
    return as_outputs(compute(*args, **clone_inputs(inputs)))


def describe(inputs: Mapping[str, Any]) -> str:
    parts = []
    for k, v in inputs.items():
        parts.append(f"{k}{list(v.shape)}" if isinstance(v, torch.Tensor) else f"{k}={v!r}")
    return ", ".join(parts)


def _mismatch(got: Outputs, want: Outputs, names: Sequence[str], atol: float, rtol: float) -> str:
    """An empty string when ``got`` matches ``want``, else what differs."""
    if len(got) != len(want):
        return f"returned {len(got)} value(s), expected {len(want)} ({', '.join(names)})"
    for name, g, w in zip(names, got, want):
        if isinstance(w, torch.Tensor):
            if not isinstance(g, torch.Tensor):
                return f"{name} is a {type(g).__name__}, expected a torch.Tensor"
            if tuple(g.shape) != tuple(w.shape):
                return f"{name} has shape {list(g.shape)}, expected {list(w.shape)}"
            if g.dtype != w.dtype:
                return f"{name} has dtype {g.dtype}, expected {w.dtype}"
            g = g.detach()
            if w.dtype == torch.bool:
                if not torch.equal(g, w):
                    return f"{name} differs from the reference at {int((g != w).sum())} position(s)"
                continue
            if torch.isnan(g).any() and not torch.isnan(w).any():
                return f"{name} contains NaN"
            if not torch.allclose(g, w, atol=atol, rtol=rtol, equal_nan=True):
                diff = (g - w).abs().nan_to_num(nan=math.inf).max().item()
                return f"{name} differs from the reference (max abs difference {diff:.3g})"
        else:
            try:
                g = float(g)
            except (TypeError, ValueError):
                return f"{name} is a {type(g).__name__}, expected a number"
            if not math.isclose(g, float(w), rel_tol=rtol, abs_tol=atol):
                return f"{name} is {g:.6g}, expected {float(w):.6g}"
    return ""


def _measure(case: Case, got: Outputs, inputs: Mapping[str, Any]):
    """The measured outputs, or a message when the outputs cannot be measured."""
    if case.measure is None:
        return got
    try:
        return as_outputs(case.measure(got, inputs))
    except Exception as exc:
        return f"its outputs could not be read ({type(exc).__name__}: {exc})"


def judge(check: Check, case: Case, inputs: Mapping[str, Any], got: Outputs, state=None,
          seed: int | None = None) -> None:
    """Compare the learner's outputs with the reference; raise AssertionError if they differ.

    ``state`` is the module's reported ``state_dict`` and ``seed`` the one its
    state was drawn from (:func:`state_seed`); the reference then uses
    :func:`trusted_state`. The message names the target and the case, says
    what differs, and, when the outputs match a known mistake, names that mistake.
    """
    if seed is not None and state is not None:
        state = trusted_state(state, seed)
    try:
        want = _expected(check, case, case.reference, inputs, state)
    except KeyError as exc:  # the learner's module lacks a parameter the reference reads
        raise AssertionError(f"{check.target} has no parameter or buffer {exc}; its "
                             f"state_dict holds {sorted(state or {})}") from None
    measured = _measure(case, got, inputs)
    if isinstance(measured, str):
        problem = measured
    else:
        problem = _mismatch(measured, want, case.outputs, case.atol, case.rtol)
    if not problem:
        return
    for mistake in case.mistakes:
        try:
            wrong = _expected(check, case, mistake.output, inputs, state)
        except Exception:  # a mistake that cannot be evaluated on these inputs
            continue
        if case.measure is not None:
            wrong = as_outputs(case.measure(wrong, inputs))
        if not isinstance(measured, str) and not _mismatch(measured, wrong, case.outputs, case.atol, case.rtol):
            raise AssertionError(f"{check.target} ({case.name}): {mistake.message}")
    raise AssertionError(f"{check.target} ({case.name}, inputs {describe(inputs)}): {problem}")


def judge_error(check: Check, case: Case, error: str | None) -> None:
    """For a case with ``raises``: ``error`` is what the target raised
    ("TypeName: message"), or None if it returned. Raises AssertionError
    unless it is the expected exception with a message naming the argument."""
    if error is None:
        raise AssertionError(f"{check.target} ({case.name}) returned a result: it must raise {case.raises}")
    kind, _, message = error.partition(": ")
    if kind != case.raises:
        raise AssertionError(f"{check.target} ({case.name}) raised {error[:300]}; expected {case.raises}")
    if case.error_names not in message:
        raise AssertionError(f"{check.target} ({case.name}): the {case.raises} message should name "
                             f"{case.error_names}; it says {message[:300]!r}")


def grad_seed(check: Check, case: Case, salt: int = 0) -> int | None:
    """The seed of the cotangents a case's gradients are taken with (None: not checked)."""
    return case.seed + salt + 7919 if wants_gradients(check, case) else None


def run_case(check: Check, case: Case, target: Any) -> None:
    """Run one case in this process: call the target, then judge its outputs
    (and gradients, :func:`wants_gradients`)."""
    inputs = make_inputs(case)
    seed, cotangents = state_seed(check, case), grad_seed(check, case)
    try:
        got, state, *grads = call_target(check.kind, target, inputs, case.init, case.init_seed, case.mode, seed,
                                         *check.positional(), grad_seed=cotangents, grad_inputs=grad_inputs(case))
    except Exception as exc:
        if case.raises:
            return judge_error(check, case, f"{type(exc).__name__}: {exc}")
        raise AssertionError(raised_message(check, case, f"{type(exc).__name__}: {exc}")) from None
    if case.raises:
        judge_error(check, case, None)
    judge(check, case, inputs, got, state, seed)
    if grads:
        judge_gradients(check, case, inputs, state, seed, grads[0], cotangents)


def raised_message(check: Check, case: Case, error: str) -> str:
    """The message for a target that raised ``error`` ("TypeName: message")."""
    hint = f" {case.hint_on_error}" if case.hint_on_error else ""
    return f"{check.target} ({case.name}) raised {error.rstrip('.')}.{hint}"


def run(check: Check, target: Any) -> None:
    """Run every case of ``check`` against ``target``; returns None (so that a
    test cell ending with this call is not read as partial credit by nbgrader)."""
    if target is None:
        raise AssertionError(f"{check.target} is not defined")
    for case in check.cases:
        run_case(check, case, target)
