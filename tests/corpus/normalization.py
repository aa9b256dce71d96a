"""06_normalization: layer_norm, batch_norm and the LayerNorm module."""
from . import Implementation

IMPLEMENTATIONS = [
    Implementation(
        name="c_tinygrad_layernorm",
        assignment="06_normalization",
        source=("tinygrad/tinygrad, tinygrad/mixin/op.py and tinygrad/nn/__init__.py, "
                "commit a9069c177a9da9cca18593edf55acd2e6073cca6, OpMixin.layernorm and LayerNorm.__call__"),
        cells={"layer_norm": '''\
def layer_norm(self, weight, bias, eps=1e-5, axis=-1):
    y = (self - self.mean(axis, keepdim=True))
    x = y.mul((y*y).mean(axis, keepdim=True).add(eps).rsqrt())
    return x * weight + bias
'''},
        adapted="tinygrad's Tensor.layernorm (its method names are torch's too) followed by the affine "
                "step of tinygrad's nn.LayerNorm.__call__ (x * weight + bias), as one function.",
    ),
    Implementation(
        name="c_llmc_layernorm",
        assignment="06_normalization",
        source=("karpathy/llm.c, doc/layernorm/layernorm.py, commit f1e2ace651495b74ae22d45d1723443fd00ecd3a, "
                "LayerNorm.forward"),
        cells={"layer_norm": '''\
def layer_norm(x, w, b, eps=1e-5):
    B, T, C = x.size()
    mean = x.sum(-1, keepdim=True) / C # B,T,1
    xshift = x - mean # B,T,C
    var = (xshift**2).sum(-1, keepdim=True) / C # B,T,1
    rstd = (var + eps) ** -0.5 # B,T,1
    norm = xshift * rstd # B,T,C
    out = norm * w + b # B,T,C

    cache = (x, w, mean, rstd)
    return out
'''},
        loses={
            "test_layer_norm_hand": "not enough values to unpack",
            "test_layer_norm_matches_builtin": "values to unpack",
        },
        adapted="The static LayerNorm.forward(x, w, b) as a function; llm.c's module-level eps = 1e-5 is the "
                "eps argument, and only out is returned (the cache serves its hand-written backward). "
                "Deviates: B, T, C = x.size() accepts only 3-D [B, T, C] input, not the contract's [..., d].",
    ),
    Implementation(
        name="c_d2l_batch_norm",
        assignment="06_normalization",
        source=("d2l-ai/d2l-en, chapter_convolutional-modern/batch-norm.md (pytorch tab), "
                "commit 23d7a5aecceee57d1292c56e90cce307f183bb0a, batch_norm() and BatchNorm.forward"),
        cells={"batch_norm": '''\
def d2l_batch_norm(X, gamma, beta, moving_mean, moving_var, eps, momentum):
    # Use is_grad_enabled to determine whether we are in training mode
    if not torch.is_grad_enabled():
        # In prediction mode, use mean and variance obtained by moving average
        X_hat = (X - moving_mean) / torch.sqrt(moving_var + eps)
    else:
        assert len(X.shape) in (2, 4)
        if len(X.shape) == 2:
            # When using a fully connected layer, calculate the mean and
            # variance on the feature dimension
            mean = X.mean(dim=0)
            var = ((X - mean) ** 2).mean(dim=0)
        else:
            # When using a two-dimensional convolutional layer, calculate the
            # mean and variance on the channel dimension (axis=1). Here we
            # need to maintain the shape of X, so that the broadcasting
            # operation can be carried out later
            mean = X.mean(dim=(0, 2, 3), keepdim=True)
            var = ((X - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        # In training mode, the current mean and variance are used
        X_hat = (X - mean) / torch.sqrt(var + eps)
        # Update the mean and variance using moving average
        moving_mean = (1.0 - momentum) * moving_mean + momentum * mean
        moving_var = (1.0 - momentum) * moving_var + momentum * var
    Y = gamma * X_hat + beta  # Scale and shift
    return Y, moving_mean.data, moving_var.data


def batch_norm(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    # d2l's BatchNorm.forward keeps the returned statistics; here they go back into the given tensors
    Y, moving_mean, moving_var = d2l_batch_norm(x, gamma, beta, running_mean, running_var,
                                                eps=eps, momentum=momentum)
    with torch.no_grad():
        running_mean.copy_(moving_mean)
        running_var.copy_(moving_var)
    return Y
'''},
        loses={
            "test_batch_norm_training": "[N, C, L]",
            "test_batch_norm_running_stats": "biased batch variance",
            "test_batch_norm_eval": "normalised with the batch's own statistics",
        },
        adapted="d2l's batch_norm verbatim (renamed d2l_batch_norm); the contract's function calls it as "
                "d2l's BatchNorm.forward does and writes the returned moving statistics into running_mean "
                "and running_var (d2l returns them instead of updating in place). Deviates: the mode comes "
                "from torch.is_grad_enabled(), not the training flag; [N, C, L] input is rejected (2-D or "
                "4-D only); the moving variance is updated with the biased batch variance.",
    ),
    Implementation(
        name="c_torch_decomp_batch_norm",
        assignment="06_normalization",
        source=("pytorch/pytorch, torch/_decomp/decompositions.py, commit cf30153c4c131c8164ee7798e5022d810682e2cb, "
                "native_batch_norm_helper() and _unsqueeze_to_dim()"),
        cells={"batch_norm": '''\
from torch import Tensor
import torch._prims_common as utils


def _unsqueeze_to_dim(x: Tensor, dim: int) -> Tensor:
    for _ in range(dim - x.dim()):
        x = x.unsqueeze(-1)
    return x


def native_batch_norm_helper(
    input: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
    functional: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    reduction_dims = [0] + list(range(2, input.dim()))
    computation_dtype = utils.get_computation_dtype(input.dtype)
    new_running_mean = running_mean
    new_running_var = running_var
    if training:
        computation_dtype = utils.get_computation_dtype(input.dtype)
        input_acc = input.to(dtype=computation_dtype)
        biased_var, mean = torch.var_mean(
            input_acc, dim=reduction_dims, correction=0, keepdim=True
        )
        rstd = torch.rsqrt(biased_var + eps)

        output = (input - mean) * rstd

        save_mean = torch.squeeze(mean, reduction_dims)
        save_rstd = torch.squeeze(rstd, reduction_dims)
        if running_mean is not None:
            new_running_mean = momentum * save_mean + (1 - momentum) * running_mean
            if not functional:
                running_mean.copy_(new_running_mean)
        if running_var is not None:
            n = input.numel() / input.shape[1]
            # This doesn't strictly match eager's numerics, which accumulates var sum and then directly applies the correction
            # But... that would require re-implementing var here, for negligible numerics gain on a tensor whose
            # numerics probably don't matter.
            squeezed_var = torch.squeeze(biased_var, reduction_dims)
            unbiased_var = squeezed_var * (n / (n - 1))
            new_running_var = momentum * unbiased_var + (1 - momentum) * running_var
            if not functional:
                running_var.copy_(new_running_var)
    else:
        if running_mean is None or running_var is None:
            raise AssertionError(
                "running_mean and running_var must not be None in eval mode"
            )
        running_mean = running_mean.to(dtype=computation_dtype, copy=True)
        new_running_mean = running_mean
        running_var = running_var.to(dtype=computation_dtype, copy=True)
        new_running_var = running_var
        mean = running_mean
        invstd = 1 / (torch.sqrt(running_var + eps))
        # Very annoying inconsistency where CPU and CUDA give different shapes
        if input.device.type != "cpu":
            save_mean = running_mean
            save_rstd = invstd
        else:
            save_mean = input.new_zeros((0,))
            save_rstd = input.new_zeros((0,))
        mean = _unsqueeze_to_dim(mean, input.dim() - 1)
        invstd = _unsqueeze_to_dim(invstd, input.dim() - 1)
        output = (input - mean) * invstd

    if weight is not None:
        weight = weight.flatten()
        weight = _unsqueeze_to_dim(weight, input.dim() - 1)
        output = output * weight

    if bias is not None:
        bias = bias.flatten()
        bias = _unsqueeze_to_dim(bias, input.dim() - 1)
        output = output + bias

    if input.device.type == "cpu":
        save_mean = save_mean.to(dtype=input.dtype)
        save_rstd = save_rstd.to(dtype=input.dtype)
    return (
        output.to(dtype=input.dtype),
        save_mean,
        save_rstd,
        new_running_mean,
        new_running_var,
    )


def batch_norm(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    return native_batch_norm_helper(x, gamma, beta, running_mean, running_var, training,
                                    momentum, eps, functional=False)[0]
'''},
        adapted="PyTorch's decomposition of aten.native_batch_norm verbatim; batch_norm calls it with "
                "functional=False (update the running statistics in place) and returns the output.",
    ),
    Implementation(
        name="c_raschka_layernorm",
        assignment="06_normalization",
        source=("rasbt/LLMs-from-scratch, ch04/01_main-chapter-code/gpt.py, "
                "commit 28c65cdfbc3338e2e040016eea4b7fdf556e4d57, LayerNorm"),
        cells={"LayerNorm": '''\
class LayerNorm(nn.Module):
    def __init__(self, emb_dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(emb_dim))
        self.bias = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        norm_x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight * norm_x + self.bias
'''},
        adapted="scale and shift renamed weight and bias (the contract's names); the hard-coded "
                "self.eps = 1e-5 became the constructor's eps argument with that default.",
    ),
    Implementation(
        name="c_hyunwoongko_layernorm",
        assignment="06_normalization",
        source=("hyunwoongko/transformer, models/layers/layer_norm.py, "
                "commit 63286547b9cd174a6cfc204832271814d685181f, LayerNorm"),
        cells={"LayerNorm": '''\
class LayerNorm(nn.Module):
    def __init__(self, d_model, eps=1e-5):
        super(LayerNorm, self).__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, unbiased=False, keepdim=True)
        # '-1' means last dimension.

        out = (x - mean) / torch.sqrt(var + self.eps)
        out = self.weight * out + self.bias
        return out
'''},
        adapted="gamma and beta renamed weight and bias; eps default 1e-12 changed to the contract's 1e-5.",
    ),
    Implementation(
        name="c_deberta_layernorm",
        assignment="06_normalization",
        source=("huggingface/transformers, src/transformers/models/deberta/modeling_deberta.py, "
                "commit 0038a3caa5c7d0c5014704005dd67ab347451ddc, DebertaLayerNorm"),
        cells={"LayerNorm": '''\
class LayerNorm(nn.Module):
    """LayerNorm module in the TF style (epsilon inside the square root)."""

    def __init__(self, size, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_type = hidden_states.dtype
        hidden_states = hidden_states.float()
        mean = hidden_states.mean(-1, keepdim=True)
        variance = (hidden_states - mean).pow(2).mean(-1, keepdim=True)
        hidden_states = (hidden_states - mean) / torch.sqrt(variance + self.variance_epsilon)
        hidden_states = hidden_states.to(input_type)
        y = self.weight * hidden_states + self.bias
        return y
'''},
        adapted="DebertaLayerNorm renamed LayerNorm; eps default 1e-12 changed to the contract's 1e-5.",
    ),
    Implementation(
        name="c_annotated_layernorm",
        assignment="06_normalization",
        source=("harvardnlp/annotated-transformer, the_annotated_transformer.py, "
                "commit debc9fd747bb2123160a98046ad1c2d4da44a567, LayerNorm"),
        cells={"LayerNorm": '''\
class LayerNorm(nn.Module):
    "Construct a layernorm module (See citation for details)."

    def __init__(self, features, eps=1e-5):
        super(LayerNorm, self).__init__()
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.weight * (x - mean) / (std + self.eps) + self.bias
'''},
        loses={"test_layer_norm_module": "unbiased"},
        adapted="a_2 and b_2 renamed weight and bias; eps default 1e-6 changed to the contract's 1e-5. "
                "Deviates: it divides by the unbiased standard deviation plus eps, (x - mean) / (std + eps), "
                "instead of sqrt(biased variance + eps).",
    ),
    Implementation(
        name="c_nanogpt_layernorm",
        assignment="06_normalization",
        source=("karpathy/nanoGPT, model.py, commit 3adf61e154c3fe3fca428ad6bc3818b27a3b8291, LayerNorm"),
        cells={"LayerNorm": '''\
from torch.nn import functional as F


class LayerNorm(nn.Module):
    """ LayerNorm but with an optional bias. PyTorch doesn't support simply bias=False """

    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, input):
        return F.layer_norm(input, self.weight.shape, self.weight, self.bias, self.eps)
'''},
        loses={"test_layer_norm_module": "torch.nn.functional.layer_norm"},
        adapted="Constructor (ndim, bias) becomes (ndim, eps=1e-5, bias=True) and the hard-coded 1e-5 is "
                "self.eps. Its numbers are right, but it calls F.layer_norm, the built-in that the contract "
                "forbids a graded LayerNorm to call.",
    ),
]
