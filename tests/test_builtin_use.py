"""COURSE_SPEC.md's rule that a graded function must not call the built-in it
re-implements, decided by reading the learner's code (autograder.builtin_use)."""
import pytest

from autograder.builtin_use import inspect

IMPORTS = "import math\nimport torch\nfrom torch import nn\nimport torch.nn.functional as F\n"
OWN = ("def layer_norm(x, gamma, beta, eps=1e-5):\n    mean = x.mean(-1, keepdim=True)\n"
       "    var = x.var(-1, unbiased=False, keepdim=True)\n    return (x - mean) / torch.sqrt(var + eps) * gamma + beta\n")


@pytest.mark.parametrize("code", [
    OWN,
    OWN + "print(F.layer_norm(torch.ones(2, 3), (3,)))  # comparing with the built-in outside the function\n",
    "def helper(x):\n    return x - x.mean(-1, keepdim=True)\n" + OWN.replace("mean = x.mean", "c = helper(x); mean = x.mean"),
    "%time y = 1\n" + OWN,
], ids=["own", "builtin_used_only_outside", "own_helper", "ipython_magic"])
def test_own_implementations_pass(code):
    assert inspect([IMPORTS, code], "layer_norm") is None


@pytest.mark.parametrize("code, named", [
    ("def layer_norm(x, gamma, beta, eps=1e-5):\n    return F.layer_norm(x, x.shape[-1:], gamma, beta, eps)\n",
     "torch.nn.functional.layer_norm"),
    ("from torch.nn.functional import layer_norm as ln\n"
     "def layer_norm(x, gamma, beta, eps=1e-5):\n    return ln(x, x.shape[-1:], gamma, beta, eps)\n",
     "torch.nn.functional.layer_norm"),
    ("norm = torch.nn.functional.layer_norm\ndef helper(x, g, b, e):\n    return norm(x, x.shape[-1:], g, b, e)\n"
     "def layer_norm(x, gamma, beta, eps=1e-5):\n    return helper(x, gamma, beta, eps)\n",
     "torch.nn.functional.layer_norm"),
    ("def layer_norm(x, gamma, beta, eps=1e-5):\n    return getattr(F, 'layer_norm')(x, x.shape[-1:], gamma, beta, eps)\n",
     "'layer_norm'"),
    ("def layer_norm(x, gamma, beta, eps=1e-5):\n"
     "    return torch.ops.aten.native_layer_norm(x, x.shape[-1:], gamma, beta, eps)[0]\n",
     "torch.ops.aten.native_layer_norm"),
    ("def layer_norm(x, gamma, beta, eps=1e-5):\n    return nn.LayerNorm(x.shape[-1], eps)(x) * gamma + beta\n",
     "torch.nn.LayerNorm"),
], ids=["F", "imported_alias", "module_alias_through_helper", "getattr_string", "torch_ops", "module"])
def test_uses_are_named(code, named):
    finding = inspect([IMPORTS, code], "layer_norm")
    assert finding is not None and finding.kind == "uses" and named in finding.message, finding


@pytest.mark.parametrize("code", [
    "def layer_norm(x, gamma, beta, eps=1e-5):\n    return getattr(F, 'layer_' + 'norm')(x, x.shape[-1:], gamma, beta)\n",
    "exec('def layer_norm(x, g, b, eps=1e-5): return F.layer_norm(x, x.shape[-1:], g, b, eps)')\n",
    "def layer_norm(x, gamma, beta, eps=1e-5):\n    return eval('F.layer' + '_norm')(x, x.shape[-1:], gamma, beta)\n",
    "torch.Tensor.mean = lambda self, *a, **k: self\n" + OWN,
], ids=["computed_getattr", "exec_defined", "eval", "monkeypatch"])
def test_undecidable_code_is_flagged_for_review(code):
    finding = inspect([IMPORTS, code], "layer_norm")
    assert finding is not None and finding.kind == "unsure", finding


@pytest.mark.parametrize("body, named", [
    ("return a @ b", "the @ operator"),
    ("return a.matmul(b)", ".matmul"),
    ("return torch.einsum('...nk,...km->...nm', a, b)", "torch.einsum"),
])
def test_broadcast_matmul_rule(body, named):
    assert inspect([IMPORTS, "def broadcast_matmul(a, b):\n    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2)\n"],
                   "broadcast_matmul") is None
    finding = inspect([IMPORTS, f"def broadcast_matmul(a, b):\n    {body}\n"], "broadcast_matmul")
    assert finding.kind == "uses" and named in finding.message


def test_attention_may_use_its_own_function_named_like_the_builtin():
    code = ("def scaled_dot_product_attention(queries, keys, values, mask=None):\n"
            "    w = torch.softmax(queries @ keys.transpose(-2, -1) / math.sqrt(keys.shape[-1]), -1)\n"
            "    return w @ values, w\n"
            "class MultiHeadAttention(nn.Module):\n    def forward(self, q, k, v, mask=None):\n"
            "        return scaled_dot_product_attention(q, k, v, mask)\n")
    assert inspect([IMPORTS, code], "MultiHeadAttention") is None
    delegating = code.replace("        return scaled_dot_product_attention(q, k, v, mask)",
                              "        return F.scaled_dot_product_attention(q, k, v, mask)")
    assert inspect([IMPORTS, delegating], "MultiHeadAttention").kind == "uses"
