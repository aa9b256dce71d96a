"""The check libraries of 01_tensors and 02_qkv judge in-process targets: right
code passes, each known mistake fails with a message that names it."""
import pytest
import torch

from autograder.checks import qkv, run
from autograder.checks import tensors as tn

# ------------------------------------------------------------------ 01_tensors


def l2_normalize(x, dim=-1, eps=1e-12, wrong_dim=False, no_eps=False):
    norm = x.norm(dim=0 if wrong_dim else dim, keepdim=True)
    return x / (norm if no_eps else norm.clamp_min(eps))


def cosine_similarity_matrix(a, b, eps=1e-8, normalise_b=True):
    b_hat = l2_normalize(b, eps=eps) if normalise_b else b
    return l2_normalize(a, eps=eps) @ b_hat.transpose(-2, -1)


def broadcast_matmul(a, b):
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"a has {a.shape[-1]} columns but b has {b.shape[-2]} rows")
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(dim=-2)


def test_correct_tensor_functions_pass_every_check():
    run(tn.l2_normalize_values, l2_normalize)
    run(tn.l2_normalize_eps, l2_normalize)
    run(tn.cosine_matches_builtin, cosine_similarity_matrix)
    run(tn.broadcast_matmul_matches_builtin, broadcast_matmul)
    run(tn.broadcast_matmul_no_builtin, broadcast_matmul)


def test_builtin_normalize_also_passes():
    run(tn.l2_normalize_values, lambda x, dim=-1, eps=1e-12: torch.nn.functional.normalize(x, dim=dim, eps=eps))


def test_l2_wrong_dimension_is_named():
    with pytest.raises(AssertionError, match="wrong dimension"):
        run(tn.l2_normalize_values, lambda x, dim=-1, eps=1e-12: l2_normalize(x, dim, eps, wrong_dim=True))


def test_l2_missing_eps_is_named():
    run(tn.l2_normalize_values, lambda x, dim=-1, eps=1e-12: l2_normalize(x, dim, eps, no_eps=True))
    with pytest.raises(AssertionError, match="missing eps"):
        run(tn.l2_normalize_eps, lambda x, dim=-1, eps=1e-12: l2_normalize(x, dim, eps, no_eps=True))


def test_cosine_one_side_not_normalised_is_named():
    with pytest.raises(AssertionError, match="without normalising one side"):
        run(tn.cosine_matches_builtin, lambda a, b, eps=1e-8: cosine_similarity_matrix(a, b, eps, normalise_b=False))


def test_cosine_missing_eps_is_named():
    def no_eps(a, b, eps=1e-8):
        return (a @ b.transpose(-2, -1)) / (a.norm(dim=-1)[..., :, None] * b.norm(dim=-1)[..., None, :])
    with pytest.raises(AssertionError, match="missing eps"):
        run(tn.cosine_matches_builtin, no_eps)


@pytest.mark.parametrize("product", [
    lambda a, b: a @ b,
    lambda a, b: torch.matmul(a, b),
    lambda a, b: a.matmul(b),
    lambda a, b: torch.einsum("...ik,...kj->...ij", a, b),
    lambda a, b: broadcast_matmul(a, b) @ torch.eye(b.shape[-1]),  # hidden in a detour
], ids=["at", "torch.matmul", "Tensor.matmul", "einsum", "detour"])
def test_matmul_builtins_are_refused(product):
    def checked(a, b):  # with the contract's ValueError for bad shapes
        if a.shape[-1] != b.shape[-2]:
            raise ValueError("a's columns do not match b's rows")
        return product(a, b)
    run(tn.broadcast_matmul_matches_builtin, checked)  # the values are right ...
    with pytest.raises(AssertionError, match="must not"):  # ... but the route is not
        run(tn.broadcast_matmul_no_builtin, checked)


def test_bmm_is_refused():
    def via_bmm(a, b):
        a, b = torch.broadcast_tensors(a.unsqueeze(-1), b.unsqueeze(-3))
        return torch.bmm(a[..., 0].reshape(-1, *a.shape[-3:-1]), b[..., 0, :, :].reshape(-1, *b.shape[-2:]))
    with pytest.raises(AssertionError, match="torch.bmm"):
        run(tn.broadcast_matmul_no_builtin, via_bmm)


def test_transposed_product_is_named():
    with pytest.raises(AssertionError, match="transposed"):
        run(tn.broadcast_matmul_matches_builtin, lambda a, b: broadcast_matmul(a, b).transpose(-2, -1))


# ---------------------------------------------------------------------- 02_qkv


def project_qkv(x, W_query, W_key, W_value, transpose=False):
    t = (lambda w: w.T) if transpose else (lambda w: w)
    return x @ t(W_query), x @ t(W_key), x @ t(W_value)


def attention_scores(queries, keys, swapped=False):
    return keys @ queries.transpose(-2, -1) if swapped else queries @ keys.transpose(-2, -1)


def soft_lookup(query, keys, values, softmax=True):
    scores = keys @ query
    return (torch.softmax(scores, dim=-1) if softmax else scores) @ values


def hard_lookup(query, keys, values):
    return values[torch.argmax(keys @ query)]


def test_correct_qkv_functions_pass_every_check():
    run(qkv.project_qkv_matches_builtin, project_qkv)
    run(qkv.attention_scores_matches_builtin, attention_scores)
    run(qkv.soft_lookup_matches_builtin, soft_lookup)
    run(qkv.hard_lookup_matches_builtin, hard_lookup)


def test_transposed_projections_are_named():
    with pytest.raises(AssertionError, match=r"transposed projections \(W.T\)"):
        run(qkv.project_qkv_matches_builtin, lambda x, W_query, W_key, W_value:
            project_qkv(x, W_query, W_key, W_value, transpose=True))


def test_swapped_scores_are_named():
    with pytest.raises(AssertionError, match="keys and queries swapped"):
        run(qkv.attention_scores_matches_builtin, lambda queries, keys: attention_scores(queries, keys, swapped=True))


def test_soft_lookup_without_softmax_is_named():
    with pytest.raises(AssertionError, match="soft lookup without softmax"):
        run(qkv.soft_lookup_matches_builtin, lambda query, keys, values: soft_lookup(query, keys, values, softmax=False))


def test_hard_and_soft_lookup_are_not_confused():
    with pytest.raises(AssertionError, match="hard lookup"):
        run(qkv.soft_lookup_matches_builtin, hard_lookup)
    with pytest.raises(AssertionError, match="soft lookup"):
        run(qkv.hard_lookup_matches_builtin, soft_lookup)
