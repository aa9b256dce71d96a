"""01_tensors: L2 normalisation, cosine-similarity matrices and a matrix product from broadcasting."""
from . import Implementation

IMPLEMENTATIONS = [
    Implementation(
        name="c_torch_normalize",
        assignment="01_tensors",
        source=("pytorch/pytorch, torch/nn/functional.py, commit cf30153c4c131c8164ee7798e5022d810682e2cb, "
                "normalize()"),
        cells={"l2_normalize": '''\
from torch import Tensor
from torch.overrides import handle_torch_function, has_torch_function_variadic


def l2_normalize(
    input: Tensor,
    dim: int = -1,
    eps: float = 1e-12,
    p: float = 2.0,
    out: Tensor | None = None,
) -> Tensor:
    r"""Perform :math:`L_p` normalization of inputs over specified dimension."""
    if has_torch_function_variadic(input, out):
        return handle_torch_function(
            l2_normalize, (input, out), input, p=p, dim=dim, eps=eps, out=out
        )
    if out is None:
        denom = input.norm(p, dim, keepdim=True).clamp_min(eps).expand_as(input)
        return input / denom
    else:
        denom = input.norm(p, dim, keepdim=True).clamp_min_(eps).expand_as(input)
        return torch.div(input, denom, out=out)
'''},
        adapted="Renamed normalize to l2_normalize (also in its __torch_function__ dispatch) and moved "
                "dim (default -1, the contract's) and eps before p; the body is PyTorch's own.",
    ),
    Implementation(
        name="c_clip_normalize",
        assignment="01_tensors",
        source=("openai/CLIP, clip/model.py, commit 0845fc462666c43bda82243874b66a0071464510, "
                "CLIP.forward (the 'normalized features' lines)"),
        cells={"l2_normalize": '''\
def l2_normalize(image_features, dim=-1, eps=1e-12):
    # normalized features
    image_features = image_features / image_features.norm(dim=dim, keepdim=True)
    return image_features
'''},
        loses={
            "test_l2_normalize_zero": "missing eps",
            "test_cosine_hand": "missing eps",
            "test_cosine_matches_builtin": "missing eps",
        },
        adapted="CLIP's feature normalisation line as a function; its dim=-1 is the dim argument. "
                "Deviates: there is no eps floor (eps is accepted and unused), so a zero vector becomes NaN; "
                "the solution's cosine_similarity_matrix builds on l2_normalize and inherits the NaN.",
    ),
    Implementation(
        name="c_sbert_cos_sim",
        assignment="01_tensors",
        source=("UKPLab/sentence-transformers, sentence_transformers/util/similarity.py and util/tensor.py, "
                "commit 85ec64559f4414aa536eca4bf53538291e0a333f, cos_sim() with _convert_to_tensor, "
                "_convert_to_batch_tensor, normalize_embeddings"),
        cells={"cosine_similarity_matrix": '''\
import numpy as np
from torch import Tensor


def _convert_to_tensor(a: list | np.ndarray | Tensor) -> Tensor:
    if isinstance(a, list):
        # Check if list contains sparse tensors
        if all(isinstance(x, Tensor) and x.is_sparse for x in a):
            # Stack sparse tensors while preserving sparsity
            return torch.stack([x.coalesce().to(dtype=torch.float32) for x in a])
        else:
            a = torch.tensor(a)
    elif not isinstance(a, Tensor):
        a = torch.tensor(a)
    if a.is_sparse:
        return a.to(dtype=torch.float32)
    return a


def _convert_to_batch_tensor(a: list | np.ndarray | Tensor) -> Tensor:
    a = _convert_to_tensor(a)
    if a.dim() == 1:
        a = a.unsqueeze(0)
    return a


def normalize_embeddings(embeddings: Tensor) -> Tensor:
    if not embeddings.is_sparse:
        return torch.nn.functional.normalize(embeddings, p=2, dim=1)

    embeddings = embeddings.coalesce()
    indices, values = embeddings.indices(), embeddings.values()

    # Compute row norms efficiently
    row_norms = torch.zeros(embeddings.size(0), device=embeddings.device)
    row_norms.index_add_(0, indices[0], values**2)
    row_norms = torch.sqrt(row_norms).index_select(0, indices[0])

    # Normalize values where norm > 0
    mask = row_norms > 0
    normalized_values = values.clone()
    normalized_values[mask] /= row_norms[mask]

    return torch.sparse_coo_tensor(indices, normalized_values, embeddings.size())


def cosine_similarity_matrix(a: list | np.ndarray | Tensor, b: list | np.ndarray | Tensor, eps=1e-8) -> Tensor:
    a = _convert_to_batch_tensor(a)
    b = _convert_to_batch_tensor(b)

    a_norm = normalize_embeddings(a)
    b_norm = normalize_embeddings(b)
    return torch.mm(a_norm, b_norm.transpose(0, 1)).to_dense()
'''},
        loses={
            "test_cosine_hand": "must be a matrix",
            "test_cosine_matches_builtin": "must be a matrix",
        },
        adapted="cos_sim renamed to cosine_similarity_matrix with an unused eps argument added; its "
                "helpers copied without the scipy import. Deviates: torch.mm and normalize(dim=1) handle "
                "[n, d] matrices only, not the contract's batched [..., n, d].",
    ),
    Implementation(
        name="c_tinygrad_dot",
        assignment="01_tensors",
        source=("tinygrad/tinygrad, tinygrad/mixin/op.py, commit a9069c177a9da9cca18593edf55acd2e6073cca6, "
                "OpMixin.dot"),
        cells={"broadcast_matmul": '''\
def broadcast_matmul(self, w, dtype=None):
    x, dx, dw = self, self.ndim, w.ndim
    if not (dx > 0 and dw > 0): raise RuntimeError(f"both tensors need to be at least 1D, got {dx}D and {dw}D")
    if x.shape[-1] != w.shape[axis_w:=-min(w.ndim,2)]: raise RuntimeError(f"cannot dot {x.shape} and {w.shape}")
    x = x.reshape(*x.shape[0:-1], *[1]*min(dx-1, dw-1, 1), x.shape[-1])
    w = w.reshape(*w.shape[0:-2], *[1]*min(dx-1, dw-1, 1), *w.shape[axis_w:]).transpose(-1, axis_w)
    return (x*w).sum(-1, dtype=dtype).to(torch.promote_types(x.dtype, w.dtype) if dtype is None else dtype)
'''},
        loses={"test_broadcast_matmul": "raised RuntimeError: cannot dot torch.Size([2, 3]) and torch.Size([4, 5]); expected ValueError"},
        adapted="tinygrad's Tensor.dot on torch tensors (the methods have the same names); dot renamed, the "
                "IMAGE branch dropped, cast/least_upper_dtype written as torch's to/promote_types. Deviates: "
                "mismatched inner dimensions raise RuntimeError, where the contract asks for ValueError.",
    ),
]
