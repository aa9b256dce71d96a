"""Checks for assignment 01_tensors (COURSE_SPEC.md).

References come from PyTorch: ``F.normalize`` for ``l2_normalize``,
``F.cosine_similarity`` (broadcast over all pairs) for
``cosine_similarity_matrix`` and ``torch.matmul`` for ``broadcast_matmul``.
``broadcast_matmul`` is also run on tensors that refuse every matrix-product
built-in (see :class:`NoMatmulTensor`), so that ``@``, ``matmul``, ``bmm``,
``einsum`` and friends are caught however they are reached.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .core import Case, Check, Mistake

# ---------------------------------------------------------------- l2_normalize


def reference_l2_normalize(x, dim=-1, eps=1e-12):
    """``x / max(||x||_2, eps)`` along ``dim``, from ``F.normalize``."""
    return F.normalize(x, p=2.0, dim=dim, eps=eps)


def _other_dim(x, dim):
    """A dimension that is not ``dim``: the first one, or the last if ``dim`` is the first."""
    d = dim % x.dim()
    return -1 if d == 0 else 0


WRONG_DIM = ("normalised over the wrong dimension: compute the norm along `dim` "
             "(by default the last one, dim=-1, so that every row has length 1), "
             "with keepdim=True so that it broadcasts back over x")
L2_MISTAKES = (
    Mistake("wrong_dim", lambda x, dim=-1, eps=1e-12: F.normalize(x, dim=_other_dim(x, dim), eps=eps),
            WRONG_DIM),
    Mistake("ignores_dim", lambda x, dim=-1, eps=1e-12: F.normalize(x, dim=-1, eps=eps),
            "the `dim` argument is ignored: " + WRONG_DIM),
    Mistake("no_keepdim", lambda x, dim=-1, eps=1e-12:
            x / x.norm(dim=dim).clamp_min(eps).unsqueeze(0),
            "the norm lost its dimension (keepdim=False), so it broadcast along the "
            "wrong axis: normalised over the wrong dimension; use keepdim=True"),
    Mistake("squared_norm", lambda x, dim=-1, eps=1e-12:
            x / (x * x).sum(dim, keepdim=True).clamp_min(eps),
            "divided by the squared norm (sum of squares); take its square root"),
    Mistake("missing_eps", lambda x, dim=-1, eps=1e-12: x / x.norm(dim=dim, keepdim=True),
            "missing eps: a zero vector has norm 0 and 0 / 0 is NaN; divide by "
            "max(norm, eps) (e.g. norm.clamp_min(eps))"),
)


def _randn(*shape, scale=1.0):
    return lambda g: dict(x=scale * torch.randn(*shape, generator=g))


KEEPDIM_HINT = ("A shape error here usually means the norm lost its dimension: use "
                "x.norm(dim=dim, keepdim=True) (or .sum(dim, keepdim=True)) so that it "
                "broadcasts back over x.")


def _l2_case(name, inputs, seed, **kw):
    return Case(name=name, inputs=inputs, reference=reference_l2_normalize, seed=seed,
                mistakes=L2_MISTAKES, hint_on_error=KEEPDIM_HINT, **kw)


l2_normalize_values = Check(
    name="l2_normalize_values",
    target="l2_normalize",
    cases=[
        _l2_case("rows of a [5, 4] matrix", _randn(5, 4), 100),
        _l2_case("[2, 3, 6] batch, default dim", _randn(2, 3, 6, scale=10.0), 101),
        _l2_case("columns of a [4, 5] matrix, dim=0",
                 lambda g: dict(x=torch.randn(4, 5, generator=g), dim=0), 102),
        _l2_case("[2, 5, 3] along dim=1",
                 lambda g: dict(x=torch.randn(2, 5, 3, generator=g), dim=1), 103),
        _l2_case("a single vector [7]", _randn(7), 104),
    ],
)


def _with_zero_rows(g):
    x = torch.randn(4, 3, generator=g)
    x[1] = 0.0
    return dict(x=x)


def _with_zero_column(g):
    x = torch.randn(3, 4, generator=g)
    x[:, 2] = 0.0
    return dict(x=x, dim=0)


def _short_vectors(g):
    return dict(x=0.1 * torch.randn(3, 2, generator=g), eps=1.0)


l2_normalize_eps = Check(
    name="l2_normalize_eps",
    target="l2_normalize",
    cases=[
        _l2_case("a zero row in a [4, 3] matrix", _with_zero_rows, 110),
        _l2_case("a zero column, dim=0", _with_zero_column, 111),
        _l2_case("all-zero [2, 2, 3] batch", lambda g: dict(x=torch.zeros(2, 2, 3)), 112),
        Case(name="short vectors with eps=1.0 (norm < eps: divide by eps)", inputs=_short_vectors,
             reference=reference_l2_normalize, seed=113,
             mistakes=L2_MISTAKES + (
                 Mistake("eps_ignored", lambda x, dim=-1, eps=1e-12: F.normalize(x, dim=dim),
                         "the `eps` argument is ignored: divide by max(norm, eps) with the "
                         "eps that was passed in"),)),
    ],
)

# ---------------------------------------------------- cosine_similarity_matrix


def reference_cosine(a, b, eps=1e-8):
    """All pairwise cosines ``[..., n, m]`` from ``F.cosine_similarity``."""
    return F.cosine_similarity(a.unsqueeze(-2), b.unsqueeze(-3), dim=-1, eps=eps)


def _unit(x, eps):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def _mT(x):
    return x.transpose(-2, -1)


ONE_SIDE = ("cosine without normalising one side: both a and b must be "
            "L2-normalised (rows of length 1) before the dot products; otherwise the "
            "values are not in [-1, 1]")
COSINE_MISTAKES = (
    Mistake("b_not_normalised", lambda a, b, eps=1e-8: _unit(a, eps) @ _mT(b),
            ONE_SIDE + " (b was not normalised)"),
    Mistake("a_not_normalised", lambda a, b, eps=1e-8: a @ _mT(_unit(b, eps)),
            ONE_SIDE + " (a was not normalised)"),
    Mistake("not_normalised", lambda a, b, eps=1e-8: a @ _mT(b),
            "these are raw dot products: normalise both a and b (cosine = a·b / (|a| |b|))"),
    Mistake("normalised_wrong_dim", lambda a, b, eps=1e-8:
            F.normalize(a, dim=-2, eps=eps) @ _mT(F.normalize(b, dim=-2, eps=eps)),
            "normalised over the wrong dimension (the samples, dim=-2): each row, a "
            "vector of d features, must have length 1 (dim=-1)"),
    Mistake("transposed", lambda a, b, eps=1e-8: _unit(b, eps) @ _mT(_unit(a, eps)),
            "the result is transposed: entry [i, j] compares row i of a with row j of b, "
            "so the shape is [..., n, m]"),
    Mistake("missing_eps", lambda a, b, eps=1e-8:
            a @ _mT(b) / (a.norm(dim=-1, keepdim=True) * _mT(b.norm(dim=-1, keepdim=True))),
            "missing eps: a zero vector has norm 0 and 0 / 0 is NaN; divide by "
            "max(norm, eps)"),
)


def _ab(batch, n, m, d, scale_a=1.0, scale_b=1.0, zero=False):
    def inputs(g):
        a = scale_a * torch.randn(*batch, n, d, generator=g)
        b = scale_b * torch.randn(*batch, m, d, generator=g)
        if zero:
            a[..., 0, :] = 0.0
        return dict(a=a, b=b)
    return inputs


cosine_matches_builtin = Check(
    name="cosine_matches_builtin",
    target="cosine_similarity_matrix",
    cases=[Case(name=name, inputs=inputs, reference=reference_cosine, seed=120 + i,
                mistakes=COSINE_MISTAKES)
           for i, (name, inputs) in enumerate([
               ("a [4, 3], b [5, 3]", _ab((), 4, 5, 3)),
               ("features on different scales: a [3, 6] x 100, b [4, 6]", _ab((), 3, 4, 6, scale_a=100.0)),
               ("batch [2], a [3, 8], b [6, 8] x 0.01", _ab((2,), 3, 6, 8, scale_b=0.01)),
               ("batch [2, 3], a [4, 5], b [4, 5]", _ab((2, 3), 4, 4, 5)),
               ("a zero vector in a: its cosines are 0, not NaN", _ab((), 3, 4, 3, zero=True)),
           ])],
)

# ------------------------------------------------------------ broadcast_matmul


def reference_matmul(a, b):
    """``torch.matmul`` on plain tensors."""
    return torch.matmul(a.as_subclass(torch.Tensor), b.as_subclass(torch.Tensor))


BLOCKED = {
    torch.matmul: "torch.matmul", torch.Tensor.matmul: "Tensor.matmul (the @ operator)",
    torch.Tensor.__matmul__: "the @ operator", torch.Tensor.__rmatmul__: "the @ operator",
    torch.mm: "torch.mm", torch.Tensor.mm: "Tensor.mm",
    torch.bmm: "torch.bmm", torch.Tensor.bmm: "Tensor.bmm",
    torch.einsum: "torch.einsum", torch.tensordot: "torch.tensordot",
    torch.mv: "torch.mv", torch.Tensor.mv: "Tensor.mv",
    torch.baddbmm: "torch.baddbmm", torch.addmm: "torch.addmm",
    F.linear: "torch.nn.functional.linear",
}
try:
    BLOCKED[torch.linalg.multi_dot] = "torch.linalg.multi_dot"
    BLOCKED[torch.linalg.matmul] = "torch.linalg.matmul"
except AttributeError:  # pragma: no cover - older PyTorch
    pass


class NoMatmulTensor(torch.Tensor):
    """A tensor that raises when a matrix-product built-in is applied to it."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in BLOCKED:
            raise RuntimeError(
                f"broadcast_matmul uses {BLOCKED[func]}, which it must not: build the "
                "product from broadcasting (unsqueeze, *) and sum only, without "
                "@, matmul, bmm or einsum")
        return super().__torch_function__(func, types, args, kwargs or {})


def _mm(a_shape, b_shape, spy=False):
    def inputs(g):
        a, b = torch.randn(*a_shape, generator=g), torch.randn(*b_shape, generator=g)
        if spy:
            a, b = a.as_subclass(NoMatmulTensor), b.as_subclass(NoMatmulTensor)
        return dict(a=a, b=b)
    return inputs


MATMUL_MISTAKES = (
    Mistake("elementwise", lambda a, b: a * b,
            "this is the element-wise product a * b; a matrix product sums over the shared "
            "dimension k: out[..., i, j] = sum_k a[..., i, k] * b[..., k, j]"),
    Mistake("transposed", lambda a, b: reference_matmul(a, b).transpose(-2, -1),
            "the result is transposed: out[..., i, j] pairs row i of a with column j of b"),
)
SHAPE_HINT = ("Line up the shapes: a.unsqueeze(-1) is [..., n, k, 1], b.unsqueeze(-3) is "
              "[..., 1, k, m]; their product broadcasts to [..., n, k, m] and the sum over "
              "k (dim=-2) gives [..., n, m].")

MATMUL_SHAPES = [((2, 3), (3, 4)), ((2, 1, 3, 4), (5, 4, 2)), ((3, 2, 4), (4, 5)),
                 ((4, 3), (2, 3, 6)), ((2, 3, 3), (2, 3, 3)), ((1, 6, 2), (3, 2, 1))]

broadcast_matmul_matches_builtin = Check(
    name="broadcast_matmul_matches_builtin",
    target="broadcast_matmul",
    cases=[Case(name=f"a {list(sa)} x b {list(sb)}", inputs=_mm(sa, sb), reference=reference_matmul,
                seed=130 + i, atol=1e-5, rtol=1e-4, mistakes=MATMUL_MISTAKES, hint_on_error=SHAPE_HINT)
           for i, (sa, sb) in enumerate(MATMUL_SHAPES)]
    # COURSE_SPEC.md: bad arguments raise ValueError (the solution's message names a and b)
    + [Case(name="a [2, 3] x b [4, 5]: a's 3 columns do not match b's 4 rows", inputs=_mm((2, 3), (4, 5)),
            reference=None, seed=136, raises="ValueError")],
)

broadcast_matmul_no_builtin = Check(
    name="broadcast_matmul_no_builtin",
    target="broadcast_matmul",
    cases=[Case(name=f"a {list(sa)} x b {list(sb)} (tensors that refuse @, matmul, bmm, einsum)",
                inputs=_mm(sa, sb, spy=True), reference=reference_matmul, seed=140 + i,
                mistakes=MATMUL_MISTAKES)
           for i, (sa, sb) in enumerate(MATMUL_SHAPES[:2])],
)
