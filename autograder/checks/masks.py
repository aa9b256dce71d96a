"""Boolean attention masks for check inputs (True = may attend, as in
``F.scaled_dot_product_attention``); each returns ``inputs``-style functions
of a generator, shared by the multi-head and Transformer checks."""
from __future__ import annotations

import torch


def causal(t):
    """[t, t], True on and below the diagonal."""
    return lambda g: torch.ones(t, t, dtype=torch.bool).tril()


def padding(lengths, t_k):
    """[B, 1, t_k], True at the first ``lengths[b]`` positions."""
    return lambda g: (torch.arange(t_k) < torch.tensor(lengths)[:, None]).unsqueeze(1)


def per_example(B, t_q, t_k, causal=False):
    """A random [B, t_q, t_k] mask with at least one True per row (and, when
    ``causal``, nothing above the diagonal)."""
    def mask_of(g):
        m = torch.rand(B, t_q, t_k, generator=g) < 0.6
        m[..., 0] = True
        return m & torch.ones(t_q, t_k, dtype=torch.bool).tril() if causal else m
    return mask_of
