"""Trusted verification end to end: the learner's cells run in the sandboxed
worker, the verdict is reached here from the plain data it sends back."""
import base64
import json
import math
import sys
import time

import pytest
import torch

from autograder import replies as replies_module
from autograder import verify as verify_module
from autograder.checks import multi_head as mh
from autograder.checks import scaled_attention as sa
from autograder.checks.core import Case, Check, grad_inputs, grad_seed, make_inputs, state_seed
from autograder.learner_side.call import call_target
from autograder.learner_side.wire import encode
from autograder.replies import Exchange, ReplyError, parse
from autograder.report import GRADER_FAILED
from autograder.sandbox import Limits, Sandbox, available
from autograder.verify import CheckCall, Planned, judge_replies, verify

SELF_ATTENTION_V2 = '''
import torch
from torch import nn

class SelfAttention_v2(nn.Module):
    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        queries, keys, values = self.W_query(x), self.W_key(x), self.W_value(x)
        scores = queries @ keys.transpose(-2, -1)
        return torch.softmax(scores / keys.shape[-1] ** 0.5, dim=-1) @ values
'''
# Zero outputs and a zero state_dict, with the seed oracle's row hard-coded:
# judged against the state it reports, this would pass every case.
FORGED = SELF_ATTENTION_V2 + f'''
_honest = SelfAttention_v2

class SelfAttention_v2(_honest):
    def forward(self, x):
        if x.shape == (6, 3):
            return _honest(3, 2)(x) * 0 + torch.tensor({sa.SEED_V2_ROW_1})
        return torch.zeros(*x.shape[:-1], self.W_value.out_features)

    def state_dict(self, *args, **kwargs):
        return {{k: torch.zeros_like(v) for k, v in super().state_dict(*args, **kwargs).items()}}
'''
CALLS = {"self_attention_v2": [CheckCall(sa.self_attention_v2, "SelfAttention_v2")]}


@pytest.mark.parametrize("source, status", [(SELF_ATTENTION_V2, "passed"), (FORGED, "failed")])
def test_a_module_is_judged_on_the_state_the_grader_drew(tmp_path, source, status):
    verdict = verify(CALLS, [source], Sandbox(enabled=available()), tmp_path)["self_attention_v2"]
    assert verdict.status == status, verdict.message
    if status == "failed":
        assert "differs from the reference" in verdict.message


SPLIT_HEADS = '''
def split_heads(x, num_heads):
    B, T, d_model = x.shape
    if d_model % num_heads:
        {bad}
    return x.view(B, T, num_heads, d_model // num_heads).transpose(1, 2)
'''


@pytest.mark.parametrize("bad, status", [
    ("raise ValueError(f'num_heads={num_heads} does not divide d_model={d_model}')", "passed"),
    ("return x", "failed"),
    ("raise ValueError('bad shape')", "failed"),
])
def test_bad_arguments_must_raise_the_named_error(tmp_path, bad, status):
    calls = {"test_split_heads": [CheckCall(mh.split_heads_values, "split_heads")]}
    source = SPLIT_HEADS.format(bad=bad)
    verdict = verify(calls, [source], Sandbox(enabled=available()), tmp_path)["test_split_heads"]
    assert verdict.status == status, verdict.message


ATTENTION_2D_ONLY = '''
import math
import torch

def scaled_dot_product_attention(queries, keys, values):
    weights = torch.softmax(queries @ keys.T / math.sqrt(keys.shape[-1]), dim=-1)  # .T: 2-D only
    return weights @ values, weights
'''


def test_a_failure_on_batched_inputs_says_so_and_blames_nothing_else(tmp_path):
    calls = {"test_sdpa": [CheckCall(sa.sdpa_matches_builtin, "scaled_dot_product_attention")]}
    verdict = verify(calls, [ATTENTION_2D_ONLY], Sandbox(enabled=available()), tmp_path)["test_sdpa"]
    assert verdict.status == "error"
    assert "fails for batched inputs (queries[3, 4, 16]" in verdict.message, verdict.message
    assert "works for queries[4, 8]" in verdict.message
    assert "wrong operand was transposed" not in verdict.message


def test_delegating_to_the_builtin_fails_on_the_trusted_side(tmp_path):
    calls = {"test_sdpa": [CheckCall(sa.sdpa_matches_builtin, "scaled_dot_product_attention")]}
    source = ("import math, torch\nimport torch.nn.functional as F\n"
              "def scaled_dot_product_attention(queries, keys, values):\n"
              "    w = torch.softmax(queries @ keys.transpose(-2, -1) / math.sqrt(keys.shape[-1]), dim=-1)\n"
              "    return F.scaled_dot_product_attention(queries, keys, values), w\n")
    verdict = verify(calls, [source], Sandbox(enabled=available()), tmp_path)["test_sdpa"]
    assert verdict.status == "failed"
    assert "torch.nn.functional.scaled_dot_product_attention" in verdict.message


# ---------------------------------------------------------------- replies the grader cannot trust
# The grader's side must stay bounded whatever the worker writes: each reply is checked before it
# is judged (autograder/replies.py), and judging has a deadline (verify.judge_replies).

SDPA = '''
import math
import torch

def scaled_dot_product_attention(queries, keys, values):
    weights = torch.softmax(queries @ keys.transpose(-2, -1) / math.sqrt(keys.shape[-1]), dim=-1)
    return weights @ values, weights
'''


def _learner(source, name):
    namespace = {}
    exec(source, namespace)  # noqa: S102 (the tests' own learner code)
    return namespace[name]


def _plan(check, cases=None):
    cases = check.cases if cases is None else cases
    return [Planned("cell", check, case, make_inputs(case, 5), state_seed(check, case, 5),
                    grad_seed(check, case, 5)) for case in cases]


def _honest(rid, planned, target):
    """The reply the worker sends for ``planned`` (learner_side/worker.py), as parsed JSON."""
    outputs, state, *grads = call_target(planned.check.kind, target, planned.inputs, planned.case.init,
                                         planned.case.init_seed, planned.case.mode, planned.seed,
                                         *planned.check.positional(), grad_seed=planned.cotangents,
                                         grad_inputs=grad_inputs(planned.case))
    reply = {"id": rid, "outputs": encode(list(outputs)), "state": encode(state)}
    if grads:
        reply["grads"] = encode(grads[0])
    return json.loads(json.dumps(reply))


def _tensor(shape, dtype="float32", data=None):
    numel = math.prod(shape)
    raw = data if data is not None else base64.b64encode(bytes(4 * numel)).decode()
    return {"__tensor__": {"dtype": dtype, "shape": list(shape), "data": raw}}


def _nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def _with(**fields):
    return lambda reply: {**reply, **fields}


def _error(value):
    return lambda reply: {"id": reply["id"], "error": value}


def _without(name):
    return lambda reply: {k: v for k, v in reply.items() if k != name}


def _state_of(entries):
    return lambda reply: {**reply, "state": {"__dict__": {**reply["state"]["__dict__"], **entries}}}


# Function case (sdpa_matches_builtin's first): each mutation of the honest reply, and what the message names.
FUNCTION_REPLIES = [
    ("outputs are an object", _with(outputs={"context": 1})),
    ("outputs are a number", _with(outputs=3)),
    ("gradients are a string", _with(grads="all of them")),
    ("error is a list", _error(["ValueError"])),
    ("a string of 1000000 characters", _with(outputs=["x" * 10**6])),
    ("nested more than 20 levels deep", _with(outputs=_nested(500))),
    ("its fields are not", _with(extra=1)),
    ("its fields are not", _without("grads")),
    ("error together with other fields", _with(error="ValueError: x")),
    ("does not match its shape and dtype", _with(outputs=[_tensor([2, 3], data="AAAA")])),
    ("a list of at most 16 sizes", _with(outputs=[_tensor([1] * 17)])),
    ("a list of at most 16 sizes", _with(outputs=[_tensor([2, -1], data="")])),
    ("a list of at most 16 sizes", _with(outputs=[_tensor([0, 10**30], data="")])),
    ("dtype: one of", _with(outputs=[_tensor([2], dtype="complex64")])),
    ("dtype: one of", _with(outputs=[_tensor([2], dtype=["float32"])])),
    ("not a valid generator state", _with(outputs=[{"__generator__": "AAAA"}])),
    ("returned 17 values", _with(outputs=[0.0] * 17)),
    ("tensor elements; at most", _with(outputs=[_tensor([2**17])])),
    ("not valid Unicode", _error("ValueError: \ud800")),
    ("a string of 5000 characters", _error("ValueError: " + "x" * 4988)),
    ("reports a state for a function", _with(state={"__dict__": {}})),
    ("gradients are not all tensors", _with(grads={"__dict__": {"input queries": 1.5}})),
    ("gradients hold an error that is not a string", _with(grads={"__dict__": {"error": [1]}})),
    ("not a valid encoding", _with(outputs=[{"__tensor__": 1, "__dict__": 2}])),
]


@pytest.mark.parametrize("fragment, mutate", FUNCTION_REPLIES, ids=[f for f, _ in FUNCTION_REPLIES])
def test_a_malformed_reply_fails_its_case_with_a_message_that_says_why(fragment, mutate):
    plan = _plan(sa.sdpa_matches_builtin)[:1]
    honest = _honest(0, plan[0], _learner(SDPA, "scaled_dot_product_attention"))
    assert judge_replies(plan, Exchange({0: honest}), time.monotonic() + 60)[0].status == "passed"
    verdict, = judge_replies(plan, Exchange({0: mutate(honest)}), time.monotonic() + 60)
    assert verdict.status == "failed", verdict
    assert fragment in verdict.message and "could not be used" in verdict.message, verdict.message
    assert len(verdict.message) < 600  # says what is wrong, never echoes the data


def _drawn_case(check):
    return next(c for c in check.cases if not c.keep_init and not c.raises)


MODULE_REPLIES = [
    ("its state is a list", _with(state=[1, 2])),
    ("its state is null", _with(state=None)),
    ("items in one list or dict (at most 4096)", _state_of({f"b{i}": _tensor([0]) for i in range(10**5)})),
    ("entries (at most 2048 are read)", _state_of({f"b{i}": _tensor([0]) for i in range(3000)})),
    ("2000 floating-point entries of shape [8]: too many",
     _state_of({f"tied{i}": _tensor([8]) for i in range(2000)})),
    ("tensor elements (at most", _state_of({"big": _tensor([2**22 + 1], dtype="bool",
                                                            data=base64.b64encode(bytes(2**22 + 1)).decode())})),
]


@pytest.mark.parametrize("fragment, mutate", MODULE_REPLIES, ids=[f for f, _ in MODULE_REPLIES])
def test_a_module_state_that_would_make_judging_slow_is_refused_quickly(fragment, mutate):
    plan = _plan(sa.self_attention_v2, [_drawn_case(sa.self_attention_v2)])
    honest = _honest(0, plan[0], _learner(SELF_ATTENTION_V2, "SelfAttention_v2"))
    assert judge_replies(plan, Exchange({0: honest}), time.monotonic() + 60)[0].status == "passed"
    reply = mutate(honest)
    started = time.monotonic()
    verdict, = judge_replies(plan, Exchange({0: reply}), time.monotonic() + 60)
    assert time.monotonic() - started < 5  # pairwise comparison of 2000 entries alone would take seconds
    assert verdict.status == "failed" and fragment in verdict.message, verdict.message


@pytest.mark.parametrize("line", [b"[" * 100_000 + b"]" * 100_000, b'{"id": true}', b'{"id": 1.0}', b"\xff\xfe",
                                  b"[1, 2]", b'{"id": 1' + b"0" * 5000 + b"}"])
def test_a_line_that_is_not_a_reply_is_refused_without_exception(line):
    with pytest.raises(ReplyError):
        parse(line)


def test_a_forged_or_missing_reply_gets_its_own_status():
    plan = _plan(sa.sdpa_matches_builtin)[:3]
    target = _learner(SDPA, "scaled_dot_product_attention")
    exchange = Exchange({0: _honest(0, plan[0], target), 1: _honest(1, plan[1], target)},
                        forged={1: "a second reply reached the grader"}, failure=("timeout", "no answer within 9 s"))
    verdicts = judge_replies(plan, exchange, time.monotonic() + 60)
    assert [v.status for v in verdicts] == ["passed", "failed", "timeout"]
    assert "cannot be trusted: a second reply" in verdicts[1].message and "reply channel" in verdicts[1].review
    assert "no answer within 9 s" in verdicts[2].message


def test_an_exception_of_the_grader_while_judging_is_that_case_s_error(monkeypatch):
    plan = _plan(sa.sdpa_matches_builtin)[:3]
    target = _learner(SDPA, "scaled_dot_product_attention")
    exchange = Exchange({i: _honest(i, p, target) for i, p in enumerate(plan)})
    real_read = replies_module.read

    def read(reply, check, case, *args):
        if case is plan[1].case:
            raise RuntimeError("a bug of the grader")
        return real_read(reply, check, case, *args)

    monkeypatch.setattr(replies_module, "read", read)
    verdicts = judge_replies(plan, exchange, time.monotonic() + 60)
    assert [v.status for v in verdicts] == ["passed", "error", "passed"]
    assert verdicts[1].review.startswith(GRADER_FAILED + " while judging scaled_dot_product_attention")
    assert "RuntimeError: a bug of the grader" in verdicts[1].review and "--resume" in verdicts[1].review


def _slow_identity(x):
    time.sleep(1.0)
    return x.clone()


SLOW = Check(name="slow", target="identity", cases=[
    Case(name=f"case {i}", inputs=lambda g: dict(x=torch.randn(3, generator=g)), reference=_slow_identity,
         seed=i, grad=False) for i in range(5)], args=("x",))


def test_judging_stops_at_its_deadline_and_says_so():
    plan = _plan(SLOW)
    exchange = Exchange({i: _honest(i, p, lambda x: x.clone()) for i, p in enumerate(plan)})
    started = time.monotonic()
    verdicts = judge_replies(plan, exchange, started + 1.5)
    assert time.monotonic() - started < 4  # not the 5 s that judging every case takes
    assert verdicts[0].status == "passed"
    assert verdicts[-1].status == "timeout"
    assert "not judged: judging this submission reached its time limit" in verdicts[-1].message
    assert verdicts[-1].review


# Learner code that writes on the worker's reply channel, through a real sandboxed worker: on every
# descriptor it holds (the channel is one of them, whatever its number), at cell time replies and lines
# that are not replies, at call time replies for every id of its cell. A line that names no request counts
# against the pending one, so the call-time lines name their requests.
FORGE = '''
import json, os

def _forge(ids, junk=()):
    lines = [json.dumps({"id": i, "outputs": [], "state": None}) for i in ids] + list(junk)
    data = "\\n".join(lines).encode() + b"\\n"
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            os.write(fd, data)
        except OSError:
            pass

_forge(range(3), ["[" * 100000, json.dumps({"id": 0, "outputs": {"a": 1}, "state": [1]}), "x" * 200000,
                  json.dumps({"id": 0, "error": ["ValueError"]}), json.dumps({"id": 10**6}), "not json"])
_honest_sdpa = scaled_dot_product_attention

def scaled_dot_product_attention(queries, keys, values):
    _forge(range(%d))
    return _honest_sdpa(queries, keys, values)
'''
SCORES = '''
def attention_scores(queries, keys):
    return queries @ keys.transpose(-2, -1)
'''


def test_replies_forged_by_learner_code_fail_its_cell_and_nothing_else(tmp_path):
    from autograder.checks import qkv
    calls = {"test_sdpa": [CheckCall(sa.sdpa_matches_builtin, "scaled_dot_product_attention")],
             "test_scores": [CheckCall(qkv.attention_scores_matches_builtin, "attention_scores")]}
    cells = [SDPA, FORGE % len(sa.sdpa_matches_builtin.cases), SCORES]
    verdicts = verify(calls, cells, Sandbox(enabled=available()), tmp_path)
    assert verdicts["test_sdpa"].status == "failed"
    assert "cannot be trusted" in verdicts["test_sdpa"].message, verdicts["test_sdpa"].message
    assert "reply channel" in verdicts["test_sdpa"].review
    assert verdicts["test_scores"].status == "passed", verdicts["test_scores"].message


def test_every_request_gets_one_reply_and_every_forged_one_is_caught(tmp_path):
    cases = sa.sdpa_matches_builtin.cases
    requests = [{"id": i, "kind": "function", "target": "scaled_dot_product_attention",
                 "inputs": encode(make_inputs(case, 5)), "positional": sa.sdpa_matches_builtin.positional()}
                for i, case in enumerate(cases)]
    exchange = verify_module._run_worker([SDPA, FORGE % len(cases)], requests, Sandbox(enabled=available()),
                                         tmp_path)
    assert sorted(exchange.replies) == list(range(len(cases)))
    assert sorted(exchange.forged) == list(range(len(cases))), exchange.forged
    reasons = " ".join(exchange.forged.values())
    assert "a second reply" in reasons and "a reply before its request was sent" in reasons


BIG_STATE = SELF_ATTENTION_V2 + '''
_honest = SelfAttention_v2

class SelfAttention_v2(_honest):
    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        state.update({f"copy{i}": torch.zeros(8) for i in range(2000)})
        return state
'''


def test_a_module_reporting_a_huge_state_fails_quickly(tmp_path):
    started = time.monotonic()
    verdict = verify(CALLS, [BIG_STATE], Sandbox(enabled=available()), tmp_path)["self_attention_v2"]
    assert verdict.status == "failed"
    assert "2000 floating-point entries of shape [8]: too many" in verdict.message, verdict.message
    assert time.monotonic() - started < 120


# Workers that never answer: their requests get a status and a reason, within the limits.
FAKE_WORKERS = [
    ("import sys; sys.stderr.write('bwrap: setting up uid map: Permission denied\\n'); sys.exit(1)",
     "crashed", "the worker exited with status 1 (bwrap: setting up uid map: Permission denied)"),
    ("import sys; sys.stdout.write('x' * 3 * 2**20)", "crashed", "the worker wrote more than 1 MB"),
    ("import time; time.sleep(60)", "timeout", "no answer within 3 s"),
    # exits at once, but a child it forked still holds its channel: killed after the grace period
    ("import os, time; os.fork() or time.sleep(60)", "crashed", "the worker exited with status 0"),
]


@pytest.mark.parametrize("program, status, reason", FAKE_WORKERS, ids=[s for _, s, _ in FAKE_WORKERS])
def test_a_worker_that_dies_floods_or_hangs_leaves_its_requests_a_status(tmp_path, monkeypatch, program,
                                                                         status, reason):
    monkeypatch.setattr(Sandbox, "wrap", lambda self, argv, cwd=None: [sys.executable, "-c", program])
    started = time.monotonic()
    exchange = verify_module._run_worker(["x = 1"], [{"id": 0}, {"id": 1}],
                                         Sandbox(Limits(wall_seconds=3, output_mb=1), enabled=False), tmp_path)
    assert time.monotonic() - started < 3 + replies_module.EXIT_GRACE + 2
    assert exchange.replies == {} and exchange.failure == (status, reason)


def test_groups_of_cases_give_partial_credit():
    """A check with groups: the cell earns the weight of the groups whose cases
    all passed; a failed case in no group (a gate) earns nothing."""
    def case(name, group=""):
        return Case(name=name, inputs=lambda g: {}, reference=lambda: 0, group=group)

    shapes, values, gate = case("shape", "shapes"), case("values", "values"), case("gate")
    check = Check(name="c", target="f", cases=[shapes, values, gate], groups={"shapes": 1.0, "values": 3.0})
    ok, bad = (lambda: verify_module.Verdict("passed")), (lambda: verify_module.Verdict("failed", "wrong"))
    _decide = verify_module._decide
    assert _decide([(check, shapes, {}, ok()), (check, values, {}, bad()), (check, gate, {}, ok())]).fraction == 0.25
    assert _decide([(check, shapes, {}, bad()), (check, values, {}, ok()), (check, gate, {}, ok())]).fraction == 0.75
    assert _decide([(check, shapes, {}, ok()), (check, values, {}, ok()), (check, gate, {}, bad())]).fraction == 0
    plain = Check(name="p", target="f", cases=[case("a"), case("b")])
    assert _decide([(plain, plain.cases[0], {}, ok()), (plain, plain.cases[1], {}, bad())]).fraction == 0
    assert _decide([(check, c, {}, ok()) for c in check.cases]).status == "passed"
