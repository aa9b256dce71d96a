"""Wrappers that a hidden test's target expression builds around the learner's
function where it runs (``checks.returning_input(mask_tokens)``): a module or an
in-place change cannot be sent as data, so the wrapper returns plain data.
No reference lives here.
"""
from __future__ import annotations

import torch
from torch import nn


def returning_input(mask_tokens):
    """Wrap ``mask_tokens`` so that it also returns its input_ids after the call."""
    def wrapped(input_ids, mask_token_id, vocab_size, **kw):
        mine = input_ids.clone()
        corrupted, labels = mask_tokens(mine, mask_token_id, vocab_size, **kw)
        return corrupted, labels, mine
    return wrapped


class _TinyClassifier(nn.Module):
    """An encoder-like stack with a tied output layer and a buffer, for counting."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(11, 6)
        self.encoder = nn.Sequential(nn.Linear(6, 6), nn.LayerNorm(6), nn.Sequential(nn.Linear(6, 4)))
        self.bn = nn.BatchNorm1d(4)
        self.out = nn.Linear(6, 11, bias=False)
        self.out.weight = self.embedding.weight  # tied: one parameter, two uses
        self.head = nn.Linear(4, 3)
        self.temperature = nn.Parameter(torch.ones(()))  # a parameter of the top module itself


def tiny_model(frozen=()):
    """The tiny classifier, seeded, with the submodules named in ``frozen`` frozen."""
    torch.manual_seed(0)
    m = _TinyClassifier()
    for name in frozen:
        for p in getattr(m, name).parameters():
            p.requires_grad_(False)
    return m


def on_tiny_model(fn):
    """Wrap ``freeze_`` or ``count_trainable_parameters`` for a check: the model is
    built where the learner's code runs (a module cannot be sent as data), from
    the names of the submodules to freeze first; the result is plain data.

    For ``freeze_`` the wrapper returns the number of parameters of the returned
    module that still have ``requires_grad=True``; for the counter, its count.
    """
    def wrapped(frozen=(), what="count"):
        model = tiny_model(tuple(frozen))
        result = fn(model)
        if what == "freeze":
            if result is not model:
                raise TypeError("freeze_ must return the module it was given")
            return sum(p.requires_grad for p in result.parameters())
        return result
    return wrapped


