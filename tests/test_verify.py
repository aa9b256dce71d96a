"""Trusted verification end to end: the learner's cells run in the sandboxed
worker, the verdict is reached here from the plain data it sends back."""
import pytest

from autograder.checks import multi_head as mh
from autograder.checks import scaled_attention as sa
from autograder.sandbox import Sandbox, available
from autograder.verify import CheckCall, verify

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
