"""The signatures of COURSE_SPEC.md's graded functions and modules, for calling them.

Tests call a graded function or module positionally, except for the keyword
arguments the contract names (COURSE_SPEC.md, "Conventions"): a parameter
without a default is passed by position, so that ``forward(self, tokens)`` is
as correct as ``forward(self, ids)``; one with a default is passed by its
contract name. Modules list their constructor under the class name and their
``forward`` under ``Class.forward``. Where the contract is silent (the
decoder layer's masks, the capstone's ``Transformer``), the solution
notebook's docstring is the contract.
"""
from __future__ import annotations

import ast
from typing import Any, Mapping

SIGNATURES = {
    # 01_tensors
    "l2_normalize": "x, dim=-1, eps=1e-12",
    "cosine_similarity_matrix": "a, b, eps=1e-8",
    "broadcast_matmul": "a, b",
    # 02_qkv
    "project_qkv": "x, W_query, W_key, W_value",
    "attention_scores": "queries, keys",
    "soft_lookup": "query, keys, values",
    "hard_lookup": "query, keys, values",
    # 03_scaled_attention, 04_masking (mask is named by the contract)
    "scaled_dot_product_attention": "queries, keys, values, mask=None",
    "SelfAttention_v1": "d_in, d_out",
    "SelfAttention_v1.forward": "x",
    "SelfAttention_v2": "d_in, d_out, qkv_bias=False",
    "SelfAttention_v2.forward": "x",
    "score_std": "d_k, n_samples=10000, scaled=False, generator=None",
    "causal_mask": "T",
    "padding_mask": "lengths, max_len",
    "masked_softmax": "scores, mask, dim=-1",
    "CausalAttention": "d_in, d_out, context_length, dropout=0.0, qkv_bias=False",
    "CausalAttention.forward": "x",
    # 05_multi_head
    "split_heads": "x, num_heads",
    "merge_heads": "x",
    "MultiHeadAttention": "d_model, num_heads, dropout=0.0, bias=True",
    "MultiHeadAttention.forward": "query, key, value, mask=None",
    # 06_normalization
    "layer_norm": "x, gamma, beta, eps=1e-5",
    "batch_norm": "x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5",
    "LayerNorm": "d_model, eps=1e-5",
    "LayerNorm.forward": "x",
    # 07_residual
    "BasicBlock": "in_channels, out_channels, stride=1",
    "BasicBlock.forward": "x",
    "zero_pad_shortcut": "x, out_channels, stride",
    "SublayerConnection": "d_model, dropout=0.0",
    "SublayerConnection.forward": "x, sublayer",
    # 08_positional_encoding
    "sinusoidal_positional_encoding": "max_len, d_model, base=10000.0",
    "PositionalEncoding": "d_model, max_len=5000, dropout=0.0",
    "PositionalEncoding.forward": "x",
    "TokenEmbedding": "vocab_size, d_model",
    "TokenEmbedding.forward": "ids",
    # 09_elmo_bert
    "scalar_mix": "layers, s, gamma",
    "mask_tokens": ("input_ids, mask_token_id, vocab_size, special_tokens_mask=None, mlm_probability=0.15, "
                    "generator=None"),
    "TransformerEncoderLayer": "d_model, num_heads, dim_feedforward, dropout=0.1, activation='gelu'",
    "TransformerEncoderLayer.forward": "x, padding_mask=None",
    "freeze_": "module",
    "count_trainable_parameters": "module",
    # 10_transformer
    "TransformerDecoderLayer": "d_model, num_heads, dim_feedforward, dropout=0.1",
    "TransformerDecoderLayer.forward": "tgt, memory, tgt_mask=None, memory_mask=None",
    "Transformer": "vocab_size, d_model, num_heads, num_layers, dim_feedforward, dropout=0.1, max_len=128",
    "Transformer.forward": "src, tgt, src_padding_mask=None",
}


def parameters(signature: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(required, optional)`` parameter names of a signature such as ``"x, dim=-1"``."""
    args = ast.parse(f"def f({signature}): pass").body[0].args
    names = [a.arg for a in args.args]
    split = len(names) - len(args.defaults)
    return tuple(names[:split]), tuple(names[split:])


def positional(target: str, member: str = "") -> tuple[str, ...]:
    """The names passed by position when calling ``target`` (``member="forward"``
    for a module's forward): its required parameters; none for a target the
    table does not list (a check's own wrapper, called by keyword)."""
    target = target.split("(")[0]  # "CausalAttention(...).mask": a wrapper around the constructor
    signature = SIGNATURES.get(f"{target}.{member}" if member else target)
    return parameters(signature)[0] if signature is not None else ()


# The PyTorch built-ins each graded target re-implements, which it must not
# call (COURSE_SPEC.md, "Conventions"); matched by their last name under
# ``torch`` or ``torchvision`` (:mod:`autograder.builtin_use`).
_SDPA = ("torch.nn.functional.scaled_dot_product_attention", "torch.ops.aten._scaled_dot_product_attention_math",
         "torch.nn.MultiheadAttention", "torch.nn.functional.multi_head_attention_forward")
_LAYER_NORM = ("torch.nn.functional.layer_norm", "torch.nn.LayerNorm", "torch.native_layer_norm")
_LAYERS = ("torch.nn.MultiheadAttention", "torch.nn.functional.multi_head_attention_forward", "torch.nn.Transformer",
           "torch.nn.TransformerEncoder", "torch.nn.TransformerEncoderLayer",
           "torch.nn.TransformerDecoder", "torch.nn.TransformerDecoderLayer")
#: Targets whose rule also forbids the ``@`` operator and matrix-product tensor methods.
MATMUL = {"broadcast_matmul"}
BUILTINS = {
    "l2_normalize": ("torch.nn.functional.normalize",),
    "cosine_similarity_matrix": ("torch.nn.functional.cosine_similarity",),
    "broadcast_matmul": tuple(f"torch.{n}" for n in (
        "matmul", "bmm", "mm", "mv", "einsum", "tensordot", "dot", "inner", "vdot", "baddbmm", "addmm", "addbmm",
        "addmv", "chain_matmul", "linalg.multi_dot", "nn.functional.linear", "nn.functional.bilinear",
        "Tensor.__matmul__", "Tensor.__rmatmul__")),
    "scaled_dot_product_attention": _SDPA,
    "SelfAttention_v1": _SDPA,
    "SelfAttention_v2": _SDPA,
    "CausalAttention": _SDPA,
    "MultiHeadAttention": _SDPA,
    "layer_norm": _LAYER_NORM,
    "LayerNorm": _LAYER_NORM,
    "batch_norm": ("torch.nn.functional.batch_norm", "torch.nn.BatchNorm1d", "torch.nn.BatchNorm2d",
                   "torch.native_batch_norm", "torch.nn.functional.instance_norm"),
    "BasicBlock": ("torchvision.models.resnet.BasicBlock",),
    "TransformerEncoderLayer": _LAYERS,
    "TransformerDecoderLayer": _LAYERS,
    "Transformer": _LAYERS,
}
