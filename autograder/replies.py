"""A verification worker's replies: how the grader exchanges them, and what
they may hold before the grader uses them.

The worker (:mod:`autograder.learner_side.worker`) runs the learner's code,
so everything it writes is untrusted: a learner's code can write lines of its
own on the worker's reply channel (its file descriptor is reachable through
``/proc/self/fd``, so no descriptor or secret of the worker's is out of its
reach), and a reply can hold any JSON. :func:`exchange` therefore sends one
request at a time, so that no line can be based on the inputs of a request
not sent yet, and takes as the pending request's reply the first line that
names it once the request is sent; any other line (a second reply, a reply
before its request, a line that is not a reply, which counts against the
pending request) marks the request as forged: the worker writes exactly one
line per request, so a forged line is caught whichever comes first. :func:`read`
then checks a reply's fields, types, nesting, sizes and element counts
against what the case expects before anything is judged, so that judging
stays cheap. Neither raises for anything the worker writes.

What remains: learner code that takes the worker over (reads the pending
request and stops the worker's own reply, so that only its line is written)
is not caught here. It can only claim outputs for inputs it was sent, which
the grader judges itself, as it judges what a learner's function computes;
but outputs computed by code the target does not reach escape the
no-built-in rule (:mod:`autograder.builtin_use`).
"""
from __future__ import annotations

import itertools
import json
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from .checks.core import Case, Check
from .learner_side.wire import WireError, decode

MAX_OUTPUTS = 16              # values a target may return (a case expects at most 3)
OUTPUT_FLOOR = 2**16          # tensor elements always accepted in one reply's outputs
OUTPUT_FACTOR = 64            # ... or this many times the largest input tensor
MAX_STATE_ENTRIES = 2048      # entries of a module's state_dict (the capstone's has under 100)
MAX_STATE_ELEMENTS = 2**22    # tensor elements of a state_dict (the capstone's has about 12 000)
# trusted_state compares every pair of floating-point entries of one shape: bound the pairs and their elements.
MAX_STATE_PAIRS = 2**17
MAX_COMPARED = 2**27
EXIT_GRACE = 2.0              # seconds a worker that answered everything, or exited, gets to close its channel


class ReplyError(ValueError):
    """A reply the grader cannot use; the message says what is wrong with it."""


@dataclass
class Exchange:
    """What came back from one worker run."""

    replies: dict[int, dict] = field(default_factory=dict)  # request id -> its reply (parsed JSON)
    forged: dict[int, str] = field(default_factory=dict)    # request id -> the first stray line against it
    failure: tuple[str, str] = ("crashed", "")               # status and reason for requests without a reply


@dataclass(frozen=True)
class Reply:
    """A checked and decoded reply: what the learner's code returned, or the
    ``error`` it raised ("TypeName: message")."""

    outputs: tuple = ()
    state: dict | None = None   # a module's state_dict
    grads: dict | None = None   # "input x" / "parameter W.weight" -> gradient, or {"error": ...}
    error: str | None = None


def parse(line: bytes) -> dict:
    """One line of the worker as a reply: a JSON object with an integer ``id``.
    Raises ReplyError for anything else, nesting too deep for Python's json included."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise ReplyError(f"not JSON ({type(exc).__name__})") from None
    if not (isinstance(value, dict) and type(value.get("id")) is int):
        raise ReplyError("not a reply (no integer id)")
    return value


def exchange(proc: subprocess.Popen, cells: list[str], requests: list[dict], limit: int,
             seconds: float) -> Exchange:
    """Run the protocol with a started worker (``proc``, with pipes for stdin
    and stdout, leading its own process group): send it the cells and request
    0, then each next request once the pending one has its reply, and read
    until it exits. After ``seconds``, or once it has written more than
    ``limit`` bytes, its process group is killed.

    A request that another line also names is marked :attr:`Exchange.forged`
    (its reply is the first line that named it); requests without a reply get
    :attr:`Exchange.failure`.
    """
    result = Exchange()
    lines = [json.dumps(item).encode() + b"\n" for item in [{"cells": cells}, *requests]]
    ends = list(itertools.accumulate(map(len, lines)))  # request i is sent once ends[i + 1] bytes are written
    out, rest = bytearray(lines[0] + lines[1]), bytearray()  # to send; received after the last newline
    written = pending = received = 0
    deadline = time.monotonic() + seconds

    def take(line: bytes) -> None:
        nonlocal pending
        last = min(pending, len(requests) - 1)
        try:
            reply = parse(line)
        except ReplyError as exc:
            return _mark(result, last, f"a line that is not a reply ({exc})")
        rid = reply["id"]
        if not 0 <= rid < len(requests):
            _mark(result, last, f"a reply to request {rid}, which does not exist")
        elif rid < pending:
            _mark(result, rid, "a second reply")
        elif written < ends[rid + 1]:  # a later request's, or the pending one's before it was all written
            _mark(result, rid, "a reply before its request was sent")
        else:
            result.replies[rid] = reply
            pending += 1
            if pending < len(requests):
                out.extend(lines[pending + 1])

    stdin, stdout = proc.stdin.fileno(), proc.stdout.fileno()
    os.set_blocking(stdin, False)
    os.set_blocking(stdout, False)
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        while True:
            if proc.poll() is not None or pending == len(requests):
                deadline = min(deadline, time.monotonic() + EXIT_GRACE)
            if not proc.stdin.closed:
                _want_write(selector, stdin, bool(out))
                if not out and pending == len(requests):
                    proc.stdin.close()  # the worker stops at the end of its stdin
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                code = _stop(proc)  # exited, but something it started still holds its channel
                result.failure = (("crashed", f"the worker exited with status {code}") if code is not None
                                  else ("timeout", f"no answer within {seconds:g} s"))
                return result
            for key, _ in selector.select(min(remaining, 0.5)):
                if key.fd == stdin:
                    try:
                        n = os.write(stdin, out)
                    except BrokenPipeError:  # the worker is gone (its end of file follows): nothing more is sent
                        _want_write(selector, stdin, False)
                        proc.stdin.close()
                        continue
                    del out[:n]
                    written += n
                    continue
                chunk = os.read(stdout, 2**16)
                received += len(chunk)
                if received > limit:
                    _stop(proc)
                    result.failure = ("crashed", f"the worker wrote more than {limit / 2**20:g} MB")
                    return result
                rest += chunk
                if b"\n" in chunk:
                    *complete, tail = rest.split(b"\n")
                    rest = bytearray(tail)
                    for line in complete:
                        take(line)
                if not chunk:  # end of file: the worker and whatever it started are gone
                    if rest:
                        take(rest)
                    code = _stop(proc, EXIT_GRACE)
                    result.failure = ("crashed", f"the worker exited with status {code}" if code is not None
                                      else "the worker closed its reply channel")
                    return result


def _mark(result: Exchange, rid: int, what: str) -> None:
    result.forged.setdefault(rid, what)


def _want_write(selector: selectors.BaseSelector, fd: int, wanted: bool) -> None:
    registered = fd in selector.get_map()
    if wanted and not registered:
        selector.register(fd, selectors.EVENT_WRITE)
    elif registered and not wanted:
        selector.unregister(fd)


def _stop(proc: subprocess.Popen, grace: float = 0.0) -> int | None:
    """Kill the worker's process group after ``grace`` seconds; the status it
    exited with by itself, or None."""
    try:
        code = proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        code = None
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    return code


def read(reply: dict, check: Check, case: Case, inputs: Mapping[str, Any], grads: bool) -> Reply:
    """Check and decode a parsed reply (:func:`parse`) to ``case`` of ``check``
    run on ``inputs``: an ``error`` string alone, or ``outputs`` (at most
    :data:`MAX_OUTPUTS` values holding at most :func:`output_budget` tensor
    elements in all), ``state`` (None for a function; for a module a
    state_dict within :data:`MAX_STATE_ENTRIES` and :data:`MAX_STATE_ELEMENTS`,
    whose pairwise comparison in :func:`~autograder.checks.core.trusted_state`
    stays within :data:`MAX_STATE_PAIRS` and :data:`MAX_COMPARED`) and, when
    ``grads``, gradients bounded like a state plus the inputs. Types, nesting
    and string lengths are :func:`~autograder.learner_side.wire.decode`'s.
    Raises ReplyError saying what is wrong, never echoing the data.
    """
    fields = set(reply) - {"id"}
    if "error" in reply:
        if fields != {"error"}:
            raise ReplyError("it holds an error together with other fields")
        if not isinstance(reply["error"], str):
            raise ReplyError(f"its error is {_kind(reply['error'])}, not a string")
        return Reply(error=_decoded("its error", reply["error"]))
    expected = {"outputs", "state", "grads"} if grads else {"outputs", "state"}
    if fields != expected:
        raise ReplyError(f"its fields are not {', '.join(sorted(expected))}")
    if not isinstance(reply["outputs"], list):
        raise ReplyError(f"its outputs are {_kind(reply['outputs'])}, not a list")
    if len(reply["outputs"]) > MAX_OUTPUTS:
        raise ReplyError(f"it returned {len(reply['outputs'])} values (at most {MAX_OUTPUTS} are read)")
    outputs = _decoded("its outputs", reply["outputs"])
    budget = output_budget(inputs)
    if _elements(outputs) > budget:
        raise ReplyError(f"its outputs hold {_elements(outputs)} tensor elements; at most {budget} are "
                         f"accepted for these inputs")
    return Reply(outputs, _state(check, reply["state"]), _grads(reply["grads"], inputs) if grads else None)


def output_budget(inputs: Mapping[str, Any]) -> int:
    """The tensor elements a case's outputs may hold: :data:`OUTPUT_FACTOR` times
    its largest input tensor, and at least :data:`OUTPUT_FLOOR`."""
    largest = max((v.numel() for v in inputs.values() if isinstance(v, torch.Tensor)), default=0)
    return max(OUTPUT_FLOOR, OUTPUT_FACTOR * largest)


def _state(check: Check, raw: Any) -> dict | None:
    if check.kind != "module":
        if raw is not None:
            raise ReplyError("it reports a state for a function")
        return None
    state = _decoded("its state", raw)
    if not isinstance(state, dict):
        raise ReplyError(f"its state is {_kind(state)}, not a state_dict")
    _bounded("its state", state, MAX_STATE_ENTRIES, MAX_STATE_ELEMENTS)
    groups: dict[tuple, list[int]] = {}
    for value in state.values():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            groups.setdefault((tuple(value.shape), value.dtype), []).append(value.numel())
    pairs = {key: len(sizes) * (len(sizes) - 1) // 2 for key, sizes in groups.items()}
    if sum(pairs.values()) > MAX_STATE_PAIRS or sum(n * groups[k][0] for k, n in pairs.items()) > MAX_COMPARED:
        (shape, _), sizes = max(groups.items(), key=lambda item: len(item[1]) * item[1][0])
        raise ReplyError(f"its state holds {len(sizes)} floating-point entries of shape {list(shape)}: too many "
                         f"for the grader to compare pairwise (it looks for tied weights)")
    return state


def _grads(raw: Any, inputs: Mapping[str, Any]) -> dict:
    grads = _decoded("its gradients", raw)
    if not isinstance(grads, dict):
        raise ReplyError(f"its gradients are {_kind(grads)}, not a dict")
    if "error" in grads:
        if set(grads) != {"error"} or not isinstance(grads["error"], str):
            raise ReplyError("its gradients hold an error that is not a string alone")
        return grads
    if not all(v is None or isinstance(v, torch.Tensor) for v in grads.values()):
        raise ReplyError("its gradients are not all tensors or None")
    given = sum(v.numel() for v in inputs.values() if isinstance(v, torch.Tensor))
    _bounded("its gradients", grads, MAX_STATE_ENTRIES + len(inputs), MAX_STATE_ELEMENTS + given)
    return grads


def _decoded(what: str, raw: Any) -> Any:
    try:
        return decode(raw)
    except WireError as exc:
        raise ReplyError(f"{what} could not be read ({exc})") from None


def _bounded(what: str, entries: dict, most: int, elements: int) -> None:
    if len(entries) > most:
        raise ReplyError(f"{what} has {len(entries)} entries (at most {most} are read)")
    if _elements(entries) > elements:
        raise ReplyError(f"{what} holds {_elements(entries)} tensor elements (at most {elements} are read)")


def _elements(value: Any) -> int:
    """Tensor elements in a decoded value (its nesting is bounded by :func:`decode`)."""
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (tuple, dict)):
        return sum(_elements(v) for v in (value.values() if isinstance(value, dict) else value))
    return 0


def _kind(value: Any) -> str:
    """What a JSON value is, for a message (never its content)."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null", tuple: "a list"}
    return names.get(type(value), f"a {type(value).__name__}")
