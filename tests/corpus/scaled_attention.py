"""03_scaled_attention: scaled dot-product attention and Raschka's self-attention classes."""
from . import Implementation

RASBT = "rasbt/LLMs-from-scratch, ch03/01_main-chapter-code/ch03.ipynb, commit 28c65cdfbc3338e2e040016eea4b7fdf556e4d57"

IMPLEMENTATIONS = [
    Implementation(
        name="c_annotated_attention",
        assignment="03_scaled_attention",
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
        adapted="Renamed attention() to scaled_dot_product_attention; its own parameter names "
                "(query, key, value) are kept and it already returns (context, weights).",
    ),
    Implementation(
        name="c_uvadlc_sdp",
        assignment="03_scaled_attention",
        source=("phlippe/uvadlc_notebooks, docs/tutorial_notebooks/tutorial6/Transformers_and_MHAttention.ipynb, "
                "commit 0da8037c7abc32f478ff6142acceb72dbcf088ee, scaled_dot_product()"),
        cells={"scaled_dot_product_attention": '''\
import torch.nn.functional as F


def scaled_dot_product_attention(q, k, v, mask=None):
    d_k = q.size()[-1]
    attn_logits = torch.matmul(q, k.transpose(-2, -1))
    attn_logits = attn_logits / math.sqrt(d_k)
    if mask is not None:
        attn_logits = attn_logits.masked_fill(mask == 0, -9e15)
    attention = F.softmax(attn_logits, dim=-1)
    values = torch.matmul(attention, v)
    return values, attention
'''},
        adapted="Renamed scaled_dot_product to scaled_dot_product_attention and imported F as the "
                "tutorial does; parameters q, k, v kept.",
    ),
    Implementation(
        name="c_pt_sdpa_docs",
        assignment="03_scaled_attention",
        source=("pytorch/pytorch, torch/nn/functional.py, commit cf30153c4c131c8164ee7798e5022d810682e2cb, "
                "the reference implementation in the docstring of scaled_dot_product_attention"),
        cells={"scaled_dot_product_attention": '''\
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
        is_causal=False, scale=None, enable_gqa=False) -> torch.Tensor:
    L, S = query.size(-2), key.size(-2)
    scale_factor = 1 / math.sqrt(query.size(-1)) if scale is None else scale
    attn_bias = torch.zeros(L, S, dtype=query.dtype, device=query.device)
    if is_causal:
        assert attn_mask is None
        temp_mask = torch.ones(L, S, dtype=torch.bool, device=query.device).tril(diagonal=0)
        attn_bias.masked_fill_(temp_mask.logical_not(), float("-inf"))

    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            attn_bias.masked_fill_(attn_mask.logical_not(), float("-inf"))
        else:
            attn_bias = attn_mask + attn_bias

    if enable_gqa:
        key = key.repeat_interleave(query.size(-3)//key.size(-3), -3)
        value = value.repeat_interleave(query.size(-3)//value.size(-3), -3)

    attn_weight = query @ key.transpose(-2, -1) * scale_factor
    attn_weight += attn_bias
    attn_weight = torch.softmax(attn_weight, dim=-1)
    attn_weight = torch.dropout(attn_weight, dropout_p, train=True)
    return attn_weight @ value, attn_weight
'''},
        adapted="Verbatim, except that it returns (attn_weight @ value, attn_weight): the contract "
                "also returns the weights (signature adaptation).",
    ),
    Implementation(
        name="c_d2l_dotproduct",
        assignment="03_scaled_attention",
        source=("d2l-ai/d2l-en, d2l/torch.py, commit 23d7a5aecceee57d1292c56e90cce307f183bb0a, "
                "DotProductAttention and masked_softmax"),
        cells={"scaled_dot_product_attention": '''\
def masked_softmax(X, valid_lens):
    """Perform softmax operation by masking elements on the last axis.

    Defined in :numref:`sec_attention-scoring-functions`"""
    # X: 3D tensor, valid_lens: 1D or 2D tensor
    def _sequence_mask(X, valid_len, value=0):
        maxlen = X.size(1)
        mask = torch.arange((maxlen), dtype=torch.float32,
                            device=X.device)[None, :] < valid_len[:, None]
        X[~mask] = value
        return X

    if valid_lens is None:
        return nn.functional.softmax(X, dim=-1)
    else:
        shape = X.shape
        if valid_lens.dim() == 1:
            valid_lens = torch.repeat_interleave(valid_lens, shape[1])
        else:
            valid_lens = valid_lens.reshape(-1)
        # On the last axis, replace masked elements with a very large negative
        # value, whose exponentiation outputs 0
        X = _sequence_mask(X.reshape(-1, shape[-1]), valid_lens, value=-1e6)
        return nn.functional.softmax(X.reshape(shape), dim=-1)


class DotProductAttention(nn.Module):
    """Scaled dot product attention.

    Defined in :numref:`subsec_batch_dot`"""
    def __init__(self, dropout):
        super().__init__()
        self.dropout = nn.Dropout(dropout)

    # Shape of queries: (batch_size, no. of queries, d)
    # Shape of keys: (batch_size, no. of key-value pairs, d)
    # Shape of values: (batch_size, no. of key-value pairs, value dimension)
    # Shape of valid_lens: (batch_size,) or (batch_size, no. of queries)
    def forward(self, queries, keys, values, valid_lens=None):
        d = queries.shape[-1]
        # Swap the last two dimensions of keys with keys.transpose(1, 2)
        scores = torch.bmm(queries, keys.transpose(1, 2)) / math.sqrt(d)
        self.attention_weights = masked_softmax(scores, valid_lens)
        return torch.bmm(self.dropout(self.attention_weights), values)


def scaled_dot_product_attention(queries, keys, values):
    attention = DotProductAttention(dropout=0.0)
    return attention(queries, keys, values), attention.attention_weights
'''},
        loses={
            "test_sdpa_shapes": "bmm",
            "test_sdpa_hand_example": "bmm",
            "test_sdpa_matches_builtin": "bmm",
            "test_self_attention_v1": "bmm",
            "test_self_attention_v2": "bmm",
        },
        adapted="d2l's DotProductAttention and masked_softmax verbatim; a three-line function builds it "
                "with dropout 0 and returns (output, attention_weights). Deviates: torch.bmm accepts only "
                "3-D [batch, T, d] tensors, so unbatched [T, d] and 4-D inputs fail; the solution's "
                "SelfAttention_v1/v2 call it on the unbatched seed text and fail for the same reason.",
    ),
    Implementation(
        name="c_raschka_sa_v1",
        assignment="03_scaled_attention",
        source=RASBT + ", SelfAttention_v1",
        cells={"SelfAttention_v1": '''\
class SelfAttention_v1(nn.Module):

    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key   = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x):
        keys = x @ self.W_key
        queries = x @ self.W_query
        values = x @ self.W_value

        attn_scores = queries @ keys.T # omega
        attn_weights = torch.softmax(
            attn_scores / keys.shape[-1]**0.5, dim=-1
        )

        context_vec = attn_weights @ values
        return context_vec
'''},
        loses={"test_self_attention_v1": "keys.T"},
        adapted="Verbatim. Deviates: keys.T reverses every dimension of a batched [B, T, d] tensor "
                "(and warns), so forward(x [..., T, d_in]) only works on unbatched input.",
    ),
    Implementation(
        name="c_raschka_sa_v2",
        assignment="03_scaled_attention",
        source=RASBT + ", SelfAttention_v2",
        cells={"SelfAttention_v2": '''\
class SelfAttention_v2(nn.Module):

    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key   = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)

        attn_scores = queries @ keys.T
        attn_weights = torch.softmax(attn_scores / keys.shape[-1]**0.5, dim=-1)

        context_vec = attn_weights @ values
        return context_vec
'''},
        loses={"test_self_attention_v2": "keys.T"},
        adapted="Verbatim. Deviates: keys.T reverses every dimension of a batched [B, T, d] tensor "
                "(and warns), so forward(x [..., T, d_in]) only works on unbatched input.",
    ),
]
