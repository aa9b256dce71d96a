"""Trusted verdicts: run each hidden check's cases against a learner's code in
a sandboxed worker, and judge the plain data it returns in this process.

The hidden test cells of the *source* notebook say which checks grade which
cell (``run(checks.NAME, TARGET)``); the inputs are drawn with a secret salt,
sent to :mod:`autograder.learner_side.worker` as plain data, and the outputs come
back as plain data (:mod:`autograder.learner_side.wire`). References are computed
here, on this process's own copies of the inputs.
"""
from __future__ import annotations

import ast
import importlib
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import torch
from nbgrader import utils

from . import replies
from .builtin_use import inspect
from .checks.core import (Case, Check, clone_inputs, describe, grad_inputs, grad_seed, judge, judge_error,
                          judge_gradients, make_inputs, raised_message, state_seed)
from .learner_side.wire import encode
from .replies import Exchange, ReplyError
from .report import GRADER_FAILED
from .sandbox import Sandbox

HIDDEN = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


@dataclass
class Verdict:
    status: str   # passed, failed, error, timeout, crashed, missing
    message: str = ""
    review: str = ""  # why a person should look at the cell (the grader could not decide something)
    error: str = ""   # the exception the learner's code raised ("TypeName: message"), if it raised
    fraction: float = 0.0  # of the cell's points a failed verdict still earns (groups of cases passed)


@dataclass(frozen=True)
class CheckCall:
    check: Check
    target: str   # a Python expression evaluated in the learner's namespace
    modules: tuple[str, ...] = ()  # names of check modules the expression may use (their learner-side wrappers)


def hidden_checks(source_notebook: Path) -> dict[str, list[CheckCall]]:
    """grade_id -> the checks its hidden block runs, read from the source notebook.

    Recognises ``from autograder.checks import run, MODULE as NAME`` and
    ``run(NAME.CHECK, TARGET)``. A test cell without one is a plain nbgrader
    test (:func:`plain_tests`), graded in the learner's kernel; a written or
    manually graded answer (a grade cell that is also a solution cell) is the
    instructor's to grade.
    """
    calls: dict[str, list[CheckCall]] = {}
    for cell in _test_cells(source_notebook):
        source = cell.source
        block = source[source.index(HIDDEN[0]) + len(HIDDEN[0]):source.index(HIDDEN[1])] if HIDDEN[0] in source else ""
        tree = ast.parse(block)
        modules = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "autograder.checks":
                for alias in node.names:
                    if alias.name != "run":
                        modules[alias.asname or alias.name] = importlib.import_module(f"autograder.checks.{alias.name}")
        found = []
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "run"
                    and len(node.args) == 2 and isinstance(node.args[0], ast.Attribute)
                    and isinstance(node.args[0].value, ast.Name)):
                check = getattr(modules[node.args[0].value.id], node.args[0].attr)
                found.append(CheckCall(check, ast.get_source_segment(block, node.args[1]), tuple(modules)))
        if found:
            calls[cell.metadata.nbgrader["grade_id"]] = found
    return calls


def plain_tests(source_notebook: Path) -> list[str]:
    """The test cells no trusted check grades (their verdict is reached in the
    learner's kernel, as plain nbgrader reaches it)."""
    trusted = hidden_checks(source_notebook)
    return [c.metadata.nbgrader["grade_id"] for c in _test_cells(source_notebook)
            if c.metadata.nbgrader["grade_id"] not in trusted]


def _test_cells(source_notebook: Path) -> list:
    return [c for c in nbformat.read(source_notebook, as_version=4).cells
            if utils.is_grade(c) and c.cell_type == "code" and not utils.is_solution(c)]


def learner_cells(submitted: Path, released: Path) -> list[str]:
    """The code the worker executes: the submission's code cells in order,
    without test cells, and with locked (given) cells as released."""
    given = {c.metadata.nbgrader["grade_id"]: c.source for c in nbformat.read(released, as_version=4).cells
             if c.cell_type == "code" and utils.is_locked(c) and not utils.is_grade(c)}
    cells = []
    for cell in nbformat.read(submitted, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in given:
            cells.append(given.pop(grade_id))
        elif not (utils.is_grade(cell) or utils.is_locked(cell)):
            cells.append(cell.source)
    return cells


@dataclass(frozen=True)
class Planned:
    """One case sent to the worker, with what the grader keeps to judge its reply."""

    grade_id: str
    check: Check
    case: Case
    inputs: dict            # the grader's own copies
    seed: int | None        # of a module's drawn state (:func:`state_seed`)
    cotangents: int | None  # seed of the gradient check (:func:`grad_seed`), None when not checked


def verify(calls: dict[str, list[CheckCall]], cells: list[str], sandbox: Sandbox, scratch: Path) -> dict[str, Verdict]:
    """Run every case of every check against the learner's code; a verdict per grade_id.

    The worker gets ``sandbox.limits.wall_seconds``, and so does judging its
    replies (:func:`judge_replies`); ``scratch`` keeps the worker's stderr. A
    failure of the grader's own while judging becomes the cell's verdict
    (status error, review starting with "the grader failed").
    """
    salt = secrets.randbelow(2**31)
    plan, requests = [], []
    for grade_id, grade_calls in calls.items():
        for call in grade_calls:
            for case in call.check.cases:
                inputs, seed = make_inputs(case, salt), state_seed(call.check, case, salt)
                cotangents = grad_seed(call.check, case, salt)
                plan.append(Planned(grade_id, call.check, case, inputs, seed, cotangents))
                requests.append({"id": len(requests), "kind": call.check.kind, "target": call.target,
                                 "modules": list(call.modules),
                                 "init": dict(case.init) if case.init else None, "init_seed": case.init_seed,
                                 "mode": case.mode, "state_seed": seed, "inputs": encode(clone_inputs(inputs)),
                                 "positional": call.check.positional(), "grad_seed": cotangents,
                                 "grad_inputs": grad_inputs(case)})
    exchange = _run_worker(cells, requests, sandbox, scratch)
    judged = judge_replies(plan, exchange, time.monotonic() + sandbox.limits.wall_seconds)
    results: dict[str, list] = {g: [] for g in calls}
    for planned, verdict in zip(plan, judged):
        results[planned.grade_id].append((planned.check, planned.case, planned.inputs, verdict))
    verdicts = {}
    for grade_id, grade_calls in calls.items():
        try:
            verdicts[grade_id] = _decide(results[grade_id])
            _enforce_no_builtin(verdicts[grade_id], cells, {c.check.target for c in grade_calls})
        except Exception as exc:
            verdicts[grade_id] = _grader_failed(grade_id, exc)
    return verdicts


def judge_replies(plan: list[Planned], exchange: Exchange, deadline: float) -> list[Verdict]:
    """A verdict per planned case (request ids are positions in ``plan``), from
    the worker's replies. Never raises: a reply that is forged or fails
    :func:`replies.read` fails its case, an exception of the grader's own is
    the case's error (:func:`_grader_failed`), and the cases left when
    :func:`time.monotonic` passes ``deadline`` get status timeout."""
    verdicts = []
    for rid, planned in enumerate(plan):
        where = f"{planned.check.target} ({planned.case.name})"
        if time.monotonic() > deadline:
            verdicts.append(Verdict("timeout", f"{where}: not judged: judging this submission reached its "
                                    f"time limit (wall_seconds)", review="judging stopped at its time limit"))
            continue
        try:
            verdicts.append(_judge_reply(planned, exchange.replies.get(rid), exchange.forged.get(rid),
                                         exchange.failure))
        except Exception as exc:
            verdicts.append(_grader_failed(where, exc))
    return verdicts


def _grader_failed(what: str, exc: Exception) -> Verdict:
    return Verdict("error", f"{GRADER_FAILED} while judging {what}, not your code",
                   review=f"{GRADER_FAILED} while judging {what} ({type(exc).__name__}: {str(exc)[:300]}): "
                          f"rerun with --resume")


def _decide(results: list) -> Verdict:
    """The cell's verdict: its first failing case, said in terms of the evidence.

    A known mistake is named only when the outputs matched it (:func:`judge`).
    A failure (an exception or a wrong shape) on inputs of higher rank than
    every case that passed says so ("fails for batched inputs ...; works for
    ..."), instead of a hint about another cause.
    """
    failing = [r for r in results if r[3].status != "passed"]
    if not failing:
        return Verdict("passed")
    check, case, inputs, verdict = failing[0]
    verdict.fraction = _credit(results)
    passed = [r[2] for r in results if r[3].status == "passed" and r[0] is check and not r[1].raises]
    rank, passed_rank = _rank(inputs), max((_rank(p) for p in passed), default=None)
    if passed_rank is not None and rank > passed_rank and (verdict.error or "has shape" in verdict.message):
        cause = verdict.error or verdict.message.rsplit(": ", 1)[-1]
        verdict.message = (f"{check.target} fails for batched inputs ({describe(inputs)}) but works for "
                           f"{describe(passed[0])}: {cause}. Make it accept any leading batch dimensions "
                           f"(index the last axes: transpose(-2, -1), dim=-1).")
    return verdict


def _credit(results: list) -> float:
    """The share of a failed cell's points earned by its checks' groups whose
    cases all passed (:attr:`autograder.checks.core.Check.groups`); 0 when a
    case in no group failed, or when no check has groups."""
    weights: dict[tuple[int, str], float] = {}
    failed: set[tuple[int, str]] = set()
    for check, case, _, verdict in results:
        key = (id(check), case.group)
        if case.group not in check.groups:
            if verdict.status != "passed":
                return 0.0
            continue
        weights[key] = check.groups[case.group]
        if verdict.status != "passed":
            failed.add(key)
    total = sum(weights.values())
    return sum(w for k, w in weights.items() if k not in failed) / total if total else 0.0


def _rank(inputs) -> int:
    return max((v.dim() for v in inputs.values() if isinstance(v, torch.Tensor)), default=0)


def _enforce_no_builtin(verdict: Verdict, cells: list[str], targets: set[str]) -> None:
    """COURSE_SPEC.md's rule, decided on the learner's code (:mod:`.builtin_use`):
    a cell whose target uses its built-in fails; one that cannot be decided is
    flagged for review."""
    for target in sorted(targets):
        finding = inspect(cells, target.split("(")[0].split(".")[0])
        if finding is None:
            continue
        if finding.kind == "uses" and verdict.status == "passed":
            verdict.status, verdict.message = "failed", finding.message
        elif finding.kind == "unsure":
            verdict.review = "; ".join(filter(None, [verdict.review, finding.message]))


def _judge_reply(planned: Planned, reply: dict | None, forged: str | None, failure: tuple[str, str]) -> Verdict:
    check, case, inputs = planned.check, planned.case, planned.inputs
    where = f"{check.target} ({case.name})"
    if forged:
        return Verdict("failed", f"{where}: its result cannot be trusted: {forged} reached the grader on "
                                 f"the worker's reply channel, which only the worker writes: the learner's code "
                                 f"wrote on it", review=f"learner code wrote on the grader's reply channel ({forged})")
    if reply is None:
        return Verdict(failure[0], f"{where}: no result: {failure[1]}")
    try:
        got = replies.read(reply, check, case, inputs, planned.cotangents is not None)
    except ReplyError as exc:
        return Verdict("failed", f"{where}: its result could not be used: {exc}")
    if case.raises:
        try:
            judge_error(check, case, got.error)
        except AssertionError as exc:
            return Verdict("failed", str(exc))
        return Verdict("passed")
    if got.error is not None:
        error = got.error[:500]
        return Verdict("error", raised_message(check, case, error), error=error)
    try:
        judge(check, case, inputs, got.outputs, got.state, planned.seed)
        if planned.cotangents is not None:
            judge_gradients(check, case, inputs, got.state, planned.seed, got.grads, planned.cotangents)
    except AssertionError as exc:
        return Verdict("failed", str(exc))
    except Exception as exc:  # a reference that cannot digest what the learner returned
        return Verdict("failed", f"{where}: unusable outputs ({type(exc).__name__}: {str(exc)[:300]})")
    return Verdict("passed")


def _run_worker(cells: list[str], requests: list[dict], sandbox: Sandbox, scratch: Path) -> Exchange:
    """Run the worker on the learner's ``cells`` and answer ``requests`` one at
    a time (:func:`replies.exchange`). Its stderr goes to ``scratch``; the last
    line there (bubblewrap's or Python's, written before any learner code runs)
    completes the reason when it crashed."""
    if not requests:
        return Exchange()
    scratch.mkdir(parents=True, exist_ok=True)
    argv = sandbox.wrap([sys.executable, "-m", "autograder.learner_side.worker"], cwd="/tmp")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    with open(scratch / "worker.stderr", "wb") as stderr:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                env=env, start_new_session=True)
    with proc.stdin, proc.stdout:
        exchange = replies.exchange(proc, cells, requests, sandbox.limits.output_mb * 2**20,
                                    sandbox.limits.wall_seconds)
    status, reason = exchange.failure
    said = (scratch / "worker.stderr").read_bytes()[-2000:].decode(errors="replace").strip()
    if status == "crashed" and said:
        exchange.failure = (status, f"{reason} ({said.splitlines()[-1].strip()[:200]})")
    return exchange
