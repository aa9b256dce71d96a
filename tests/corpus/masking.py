"""04_masking: causal and padding masks, masked softmax, masked attention, CausalAttention."""
from . import Implementation

IMPLEMENTATIONS = [
    Implementation(
        name="c_annotated_subsequent_mask",
        assignment="04_masking",
        source=("harvardnlp/annotated-transformer, the_annotated_transformer.py, "
                "commit debc9fd747bb2123160a98046ad1c2d4da44a567, subsequent_mask()"),
        cells={"causal_mask": '''\
def causal_mask(size):
    "Mask out subsequent positions."
    attn_shape = (1, size, size)
    subsequent_mask = torch.triu(torch.ones(attn_shape), diagonal=1).type(
        torch.uint8
    )
    return subsequent_mask == 0
'''},
        loses={
            "test_causal_mask": "got [1, 3, 3]",
            "test_causal_attention": "[1, 6, 6]",
        },
        adapted="subsequent_mask renamed to causal_mask; already bool with True = may attend. Deviates: it "
                "returns [1, T, T] (a leading batch axis) instead of [T, T]; the solution's CausalAttention "
                "registers it as its buffer, which then has the wrong shape and breaks for T < context_length.",
    ),
    Implementation(
        name="c_pt_sdpa_causal_mask",
        assignment="04_masking",
        source=("pytorch/pytorch, torch/nn/functional.py, commit cf30153c4c131c8164ee7798e5022d810682e2cb, "
                "the is_causal branch of the reference implementation in scaled_dot_product_attention's docstring"),
        cells={"causal_mask": '''\
def causal_mask(T):
    L, S = T, T
    temp_mask = torch.ones(L, S, dtype=torch.bool).tril(diagonal=0)
    return temp_mask
'''},
        adapted="The temp_mask line of the docstring's is_causal branch, with L = S = T (device argument dropped).",
    ),
    Implementation(
        name="c_onmt_sequence_mask",
        assignment="04_masking",
        source=("OpenNMT/OpenNMT-py, onmt/utils/misc.py and onmt/decoders/transformer.py, "
                "commit 97111d97551c24857076a4102eabdb468b35cff4, sequence_mask() and its call "
                "sequence_mask(src_len, src_max_len).unsqueeze(1) in TransformerDecoder"),
        cells={"padding_mask": '''\
def sequence_mask(lengths, max_len=None):
    """
    Creates a boolean mask from sequence lengths.
    """
    max_len = max_len or lengths.max()
    return torch.arange(0, max_len, device=lengths.device) >= lengths.unsqueeze(1)


def padding_mask(lengths, max_len):
    src_pad_mask = sequence_mask(lengths, max_len).unsqueeze(1)  # [B x 1 x slen]
    return ~src_pad_mask
'''},
        adapted="sequence_mask verbatim with OpenNMT's own call site (.unsqueeze(1), [B, 1, slen]); OpenNMT's "
                "mask is True at padding, so the result is inverted at the boundary (True = real token).",
    ),
    Implementation(
        name="c_fairseq_lengths_to_mask",
        assignment="04_masking",
        source=("facebookresearch/fairseq, fairseq/data/data_utils.py, "
                "commit 3d262bb25690e4eb2e7d3c1309b1e9c406ca4b99, lengths_to_padding_mask() and lengths_to_mask()"),
        cells={"padding_mask": '''\
# lens: torch.LongTensor
# returns: torch.BoolTensor
def lengths_to_padding_mask(lens):
    bsz, max_lens = lens.size(0), torch.max(lens).item()
    mask = torch.arange(max_lens).to(lens.device).view(1, max_lens)
    mask = mask.expand(bsz, -1) >= lens.view(bsz, 1).expand(-1, max_lens)
    return mask


# lens: torch.LongTensor
# returns: torch.BoolTensor
def lengths_to_mask(lens):
    return ~lengths_to_padding_mask(lens)


def padding_mask(lengths, max_len):
    return lengths_to_mask(lengths)
'''},
        loses={"test_padding_mask": "add the query axis"},
        adapted="fairseq's lengths_to_mask (True at real tokens) called for padding_mask; max_len is "
                "accepted but fairseq has no such argument. Deviates: the mask is [B, max(lengths)], with "
                "neither the query axis nor the requested width max_len.",
    ),
    Implementation(
        name="c_allennlp_masked_softmax",
        assignment="04_masking",
        source=("allenai/allennlp, allennlp/nn/util.py, commit 80fb6061e568cb9d6ab5d45b661e86eb61b92c82, "
                "masked_softmax() and tiny_value_of_dtype()"),
        cells={"masked_softmax": '''\
def tiny_value_of_dtype(dtype: torch.dtype):
    if not dtype.is_floating_point:
        raise TypeError("Only supports floating point dtypes.")
    if dtype == torch.float or dtype == torch.double:
        return 1e-13
    elif dtype == torch.half:
        return 1e-4
    else:
        raise TypeError("Does not support dtype " + str(dtype))


def min_value_of_dtype(dtype: torch.dtype):
    if dtype == torch.bool:
        raise TypeError("Does not support torch.bool")
    if dtype.is_floating_point:
        return torch.finfo(dtype).min
    else:
        return torch.iinfo(dtype).min


def masked_softmax(
    vector: torch.Tensor,
    mask: torch.BoolTensor,
    dim: int = -1,
    memory_efficient: bool = False,
) -> torch.Tensor:
    if mask is None:
        result = torch.nn.functional.softmax(vector, dim=dim)
    else:
        while mask.dim() < vector.dim():
            mask = mask.unsqueeze(1)
        if not memory_efficient:
            # To limit numerical errors from large vector elements outside the mask, we zero these out.
            result = torch.nn.functional.softmax(vector * mask, dim=dim)
            result = result * mask
            result = result / (
                result.sum(dim=dim, keepdim=True) + tiny_value_of_dtype(result.dtype)
            )
        else:
            masked_vector = vector.masked_fill(~mask, min_value_of_dtype(vector.dtype))
            result = torch.nn.functional.softmax(masked_vector, dim=dim)
    return result
'''},
        loses={
            "test_masked_softmax": "masked_softmax fails for batched inputs (scores[2, 3, 6, 6], mask[6, 6])",
            "test_sdpa_masked": "scaled_dot_product_attention fails for batched inputs",
            # the module reuses that masked_softmax: the grader can only show the case and the exception
            "test_causal_attention": "raised RuntimeError: The size of tensor a",
            "test_causal_attention_no_future": "raised RuntimeError: The size of tensor a",
            "test_causal_attention_dropout": "raised RuntimeError: The size of tensor a",
        },
        adapted="Verbatim (with its two dtype helpers; min_value_of_dtype written without allennlp's "
                "info_value_of_dtype indirection); the mask is already bool, True = keep. Deviates: a mask "
                "with fewer dimensions than the scores is unsqueezed at dim 1 (allennlp's [batch, ...] "
                "convention) instead of broadcast from the left, so a [T, T] mask on [B, H, T, T] scores "
                "fails; the solution's attention and CausalAttention use masked_softmax that way.",
    ),
    Implementation(
        name="c_deberta_xsoftmax",
        assignment="04_masking",
        source=("huggingface/transformers, src/transformers/models/deberta/modeling_deberta.py, "
                "commit 0038a3caa5c7d0c5014704005dd67ab347451ddc, XSoftmax; softmax_backward_data from "
                "src/transformers/pytorch_utils.py, commit 04ae75715f2cca2d87bbaf07c1d8e9fb2ab20bfd"),
        cells={"masked_softmax": '''\
def softmax_backward_data(parent, grad_output, output, dim, self):
    """
    A function that calls the internal `_softmax_backward_data` PyTorch method and that adjusts the arguments according
    to the torch version detected.
    """

    from torch import _softmax_backward_data

    return _softmax_backward_data(grad_output, output, parent.dim, self.dtype)


class XSoftmax(torch.autograd.Function):
    """
    Masked Softmax which is optimized for saving memory
    """

    @staticmethod
    def forward(self, input, mask, dim):
        self.dim = dim
        rmask = ~(mask.to(torch.bool))

        output = input.masked_fill(rmask, torch.tensor(torch.finfo(input.dtype).min))
        output = torch.softmax(output, self.dim)
        output.masked_fill_(rmask, 0)
        self.save_for_backward(output)
        return output

    @staticmethod
    def backward(self, grad_output):
        (output,) = self.saved_tensors
        inputGrad = softmax_backward_data(self, grad_output, output, self.dim, output)
        return inputGrad, None, None


def masked_softmax(scores, mask, dim=-1):
    return XSoftmax.apply(scores, mask, dim)
'''},
        adapted="XSoftmax verbatim (ONNX symbolic left out) with HF's softmax_backward_data helper for "
                "torch >= 1.11; masked_softmax applies it. Its mask convention (non-zero = keep) is the "
                "contract's.",
    ),
    Implementation(
        name="c_annotated_attention_masked",
        assignment="04_masking",
        source=("harvardnlp/annotated-transformer, the_annotated_transformer.py, "
                "commit debc9fd747bb2123160a98046ad1c2d4da44a567, attention()"),
        cells={"scaled_dot_product_attention": '''\
def scaled_dot_product_attention(query, key, value, mask=None, dropout=None):
    "Compute 'Scaled Dot Product Attention'"
    d_k = query.size(-1)
    scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -1e9)
    p_attn = scores.softmax(dim=-1)
    if dropout is not None:
        p_attn = dropout(p_attn)
    return torch.matmul(p_attn, value), p_attn
'''},
        loses={"test_sdpa_masked": "uniform weights"},
        adapted="Renamed attention() to scaled_dot_product_attention. Its mask == 0 test blocks where a "
                "bool mask is False, the contract's polarity. Deviates: masked scores become -1e9, so a row "
                "with nothing to attend to gets uniform weights instead of zeros.",
    ),
    Implementation(
        name="c_pt_sdpa_docs_masked",
        assignment="04_masking",
        source=("pytorch/pytorch, torch/nn/functional.py, commit cf30153c4c131c8164ee7798e5022d810682e2cb, "
                "the reference implementation in the docstring of scaled_dot_product_attention"),
        cells={"scaled_dot_product_attention": '''\
def scaled_dot_product_attention(query, key, value, mask=None, dropout_p=0.0,
        is_causal=False, scale=None, enable_gqa=False) -> torch.Tensor:
    L, S = query.size(-2), key.size(-2)
    scale_factor = 1 / math.sqrt(query.size(-1)) if scale is None else scale
    attn_bias = torch.zeros(L, S, dtype=query.dtype, device=query.device)
    if is_causal:
        assert mask is None
        temp_mask = torch.ones(L, S, dtype=torch.bool, device=query.device).tril(diagonal=0)
        attn_bias.masked_fill_(temp_mask.logical_not(), float("-inf"))

    if mask is not None:
        if mask.dtype == torch.bool:
            attn_bias.masked_fill_(mask.logical_not(), float("-inf"))
        else:
            attn_bias = mask + attn_bias

    if enable_gqa:
        key = key.repeat_interleave(query.size(-3)//key.size(-3), -3)
        value = value.repeat_interleave(query.size(-3)//value.size(-3), -3)

    attn_weight = query @ key.transpose(-2, -1) * scale_factor
    attn_weight += attn_bias
    attn_weight = torch.softmax(attn_weight, dim=-1)
    attn_weight = torch.dropout(attn_weight, dropout_p, train=True)
    return attn_weight @ value, attn_weight
'''},
        loses={"test_sdpa_masked": "doesn't match the broadcast shape"},
        adapted="attn_mask renamed to the contract's mask; returns (output, weights). Deviates: the bool "
                "mask is folded in place into an [L, S] bias, so a mask with batch dimensions ([B, 1, S], "
                "[B, L, S]) cannot be applied, and a fully masked row becomes NaN instead of zeros.",
    ),
    Implementation(
        name="c_raschka_causal_attention",
        assignment="04_masking",
        source=("rasbt/LLMs-from-scratch, ch03/01_main-chapter-code/ch03.ipynb, "
                "commit 28c65cdfbc3338e2e040016eea4b7fdf556e4d57, CausalAttention"),
        cells={"CausalAttention": '''\
class CausalAttention(nn.Module):

    def __init__(self, d_in, d_out, context_length,
                 dropout=0.0, qkv_bias=False):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key   = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout) # New
        self.register_buffer('mask', torch.triu(torch.ones(context_length, context_length), diagonal=1)) # New

    def forward(self, x):
        b, num_tokens, d_in = x.shape # New batch dimension b
        # For inputs where `num_tokens` exceeds `context_length`, this will result in errors
        # in the mask creation further below.
        # In practice, this is not a problem since the LLM (chapters 4-7) ensures that inputs
        # do not exceed `context_length` before reaching this forward method.
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)

        attn_scores = queries @ keys.transpose(1, 2) # Changed transpose
        attn_scores.masked_fill_(  # New, _ ops are in-place
            self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)  # `:num_tokens` to account for cases where the number of tokens in the batch is smaller than the supported context_size
        attn_weights = torch.softmax(
            attn_scores / keys.shape[-1]**0.5, dim=-1
        )
        attn_weights = self.dropout(attn_weights) # New

        context_vec = attn_weights @ values
        return context_vec
'''},
        loses={"test_causal_attention": "torch.float32"},
        adapted="Verbatim except the default dropout=0.0 (signature). Deviates: the buffer mask is a float "
                "tensor with 1 ABOVE the diagonal (1 = blocked); the contract fixes a bool buffer that is "
                "True on and below the diagonal (True = may attend). The attention itself is correct.",
    ),
]
