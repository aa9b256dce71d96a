"""05_multi_head: splitting and merging heads, multi-head attention modules."""
from . import Implementation

GPT2 = ("huggingface/transformers, src/transformers/models/gpt2/modeling_gpt2.py, "
        "commit 0010f60284ab4b9d14b7df9c6525b1a2ad44e640, GPT2Attention")
ONMT = ("OpenNMT/OpenNMT-py, onmt/modules/multi_headed_attn.py, commit 97111d97551c24857076a4102eabdb468b35cff4")

IMPLEMENTATIONS = [
    Implementation(
        name="c_hf_gpt2_split_heads",
        assignment="05_multi_head",
        source=GPT2 + "._split_heads (and the divisibility check of GPT2Attention.__init__)",
        cells={"split_heads": '''\
def split_heads(tensor, num_heads):
    """
    Splits hidden_size dim into attn_head_size and num_heads
    """
    embed_dim = tensor.size(-1)
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise ValueError(
            f"`embed_dim` must be divisible by num_heads (got `embed_dim`: {embed_dim} and `num_heads`:"
            f" {num_heads})."
        )
    attn_head_size = head_dim
    new_shape = tensor.size()[:-1] + (num_heads, attn_head_size)
    tensor = tensor.view(new_shape)
    return tensor.permute(0, 2, 1, 3)  # (batch, head, seq_length, head_features)
'''},
        adapted="_split_heads(tensor, num_heads, attn_head_size) as a function: attn_head_size is derived "
                "as GPT2Attention.__init__ derives head_dim, with that constructor's ValueError check.",
    ),
    Implementation(
        name="c_hf_bert_split_heads",
        assignment="05_multi_head",
        source=("huggingface/transformers, src/transformers/models/bert/modeling_bert.py, "
                "commit 004ad5f50b627b59bf0d581c31bc0052b6cfd40b, BertSelfAttention.transpose_for_scores "
                "(and the check of BertSelfAttention.__init__)"),
        cells={"split_heads": '''\
def split_heads(x, num_attention_heads):
    hidden_size = x.size(-1)
    if hidden_size % num_attention_heads != 0:
        raise ValueError(
            f"The hidden size ({hidden_size}) is not a multiple of the number of attention "
            f"heads ({num_attention_heads})"
        )
    attention_head_size = int(hidden_size / num_attention_heads)
    new_x_shape = x.size()[:-1] + (num_attention_heads, attention_head_size)
    x = x.view(*new_x_shape)
    return x.permute(0, 2, 1, 3)
'''},
        loses={"test_split_heads": "should name num_heads"},
        adapted="transpose_for_scores as a function, its head size derived as in __init__, with "
                "__init__'s ValueError check (config.hidden_size is x's last dimension). Deviates: the "
                "message says 'the number of attention heads' but never names the argument num_heads, "
                "as the contract asks.",
    ),
    Implementation(
        name="c_onmt_shape",
        assignment="05_multi_head",
        source=ONMT + ", shape() (and the assertion of MultiHeadedAttention.__init__)",
        cells={"split_heads": '''\
from torch import Tensor


def shape(x: Tensor, dim_per_head: int) -> Tensor:
    """
    Projection.
    [batchsize x length x modeldim]
    -> [batchsize x heads x length x dimperhead]
    """
    x_0, x_1, _ = x.size()
    return x.view(x_0, x_1, -1, dim_per_head).transpose(1, 2)


def split_heads(x, head_count):
    model_dim = x.size(-1)
    assert (
        model_dim % head_count == 0
    ), "Model dimension must be divisible by the number of heads"
    dim_per_head = model_dim // head_count
    return shape(x, dim_per_head)
'''},
        loses={"test_split_heads": "AssertionError"},
        adapted="shape() verbatim; split_heads derives dim_per_head with the assertion of "
                "MultiHeadedAttention.__init__. Deviates: a num_heads that does not divide d_model raises "
                "AssertionError, not the contract's ValueError naming num_heads.",
    ),
    Implementation(
        name="c_hf_gpt2_merge_heads",
        assignment="05_multi_head",
        source=GPT2 + "._merge_heads",
        cells={"merge_heads": '''\
def merge_heads(tensor):
    """
    Merges attn_head_size dim and num_attn_heads dim into hidden_size
    """
    num_heads, attn_head_size = tensor.size(1), tensor.size(-1)
    tensor = tensor.permute(0, 2, 1, 3).contiguous()
    new_shape = tensor.size()[:-2] + (num_heads * attn_head_size,)
    return tensor.view(new_shape)
'''},
        adapted="_merge_heads(tensor, num_heads, attn_head_size) with the two sizes read from the "
                "[B, h, T, d_head] input (the contract's merge_heads takes only x).",
    ),
    Implementation(
        name="c_onmt_unshape",
        assignment="05_multi_head",
        source=ONMT + ", unshape()",
        cells={"merge_heads": '''\
from torch import Tensor


def merge_heads(x: Tensor) -> Tensor:
    """
    Compute context.
    [batchsize x heads x length x dimperhead]
    -> [batchsize x length x modeldim]
    """
    x_0, x_1, _, x_3 = x.size()
    return x.transpose(1, 2).contiguous().view(x_0, -1, x_1 * x_3)
'''},
        adapted="unshape renamed to merge_heads.",
    ),
    Implementation(
        name="c_annotated_mha",
        assignment="05_multi_head",
        source=("harvardnlp/annotated-transformer, the_annotated_transformer.py, "
                "commit debc9fd747bb2123160a98046ad1c2d4da44a567, MultiHeadedAttention, attention(), clones()"),
        cells={"MultiHeadAttention": '''\
import copy


def clones(module, N):
    "Produce N identical layers."
    return nn.ModuleList([copy.deepcopy(module) for _ in range(N)])


def attention(query, key, value, mask=None, dropout=None):
    "Compute 'Scaled Dot Product Attention'"
    d_k = query.size(-1)
    scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -1e9)
    p_attn = scores.softmax(dim=-1)
    if dropout is not None:
        p_attn = dropout(p_attn)
    return torch.matmul(p_attn, value), p_attn


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, h, dropout=0.0, bias=True):
        "Take in model size and number of heads."
        super(MultiHeadAttention, self).__init__()
        assert d_model % h == 0
        # We assume d_v always equals d_k
        self.d_k = d_model // h
        self.h = h
        self.W_q, self.W_k, self.W_v, self.W_o = clones(nn.Linear(d_model, d_model, bias=bias), 4)
        self.linears = [self.W_q, self.W_k, self.W_v, self.W_o]
        self.attn = None
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, query, key, value, mask=None):
        "Implements Figure 2"
        if mask is not None:
            # Same mask applied to all h heads.
            mask = mask.unsqueeze(1)
        nbatches = query.size(0)

        # 1) Do all the linear projections in batch from d_model => h x d_k
        query, key, value = [
            lin(x).view(nbatches, -1, self.h, self.d_k).transpose(1, 2)
            for lin, x in zip(self.linears, (query, key, value))
        ]

        # 2) Apply attention on all the projected vectors in batch.
        x, self.attn = attention(
            query, key, value, mask=mask, dropout=self.dropout
        )

        # 3) "Concat" using a view and apply a final linear.
        x = (
            x.transpose(1, 2)
            .contiguous()
            .view(nbatches, -1, self.h * self.d_k)
        )
        del query
        del key
        del value
        return self.linears[-1](x), self.attn
'''},
        loses={"test_mha_masks": "a [T_q, T_k] mask broadcasts over the batch and the heads as it is"},
        adapted="MultiHeadedAttention renamed; constructor (h, d_model, dropout=0.1) reordered to "
                "(d_model, h, dropout=0.0, bias=True) with bias passed to the Linear layers; the four "
                "clones are registered as W_q, W_k, W_v, W_o and self.linears is a plain list of them, so "
                "forward is unchanged; it returns (output, self.attn), the weights it already keeps. "
                "Deviates: the mask always gets mask.unsqueeze(1), right for [B, T_q, T_k] and "
                "[B, 1, T_k] but wrong for a 2-D [T_q, T_k] mask, which no longer broadcasts.",
    ),
    Implementation(
        name="c_d2l_mha",
        assignment="05_multi_head",
        source=("d2l-ai/d2l-en, d2l/torch.py, commit 23d7a5aecceee57d1292c56e90cce307f183bb0a, "
                "MultiHeadAttention, DotProductAttention, masked_softmax"),
        cells={"MultiHeadAttention": '''\
def masked_softmax(X, valid_lens):
    """Perform softmax operation by masking elements on the last axis."""
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
    """Scaled dot product attention."""
    def __init__(self, dropout):
        super().__init__()
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries, keys, values, valid_lens=None):
        d = queries.shape[-1]
        # Swap the last two dimensions of keys with keys.transpose(1, 2)
        scores = torch.bmm(queries, keys.transpose(1, 2)) / math.sqrt(d)
        self.attention_weights = masked_softmax(scores, valid_lens)
        return torch.bmm(self.dropout(self.attention_weights), values)


class MultiHeadAttention(nn.Module):
    """Multi-head attention."""
    def __init__(self, num_hiddens, num_heads, dropout=0.0, bias=True, **kwargs):
        super().__init__()
        self.num_heads = num_heads
        self.attention = DotProductAttention(dropout)
        self.W_q = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.W_k = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.W_v = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.W_o = nn.Linear(num_hiddens, num_hiddens, bias=bias)

    def forward(self, queries, keys, values, mask=None):
        valid_lens = mask
        # Shape of queries, keys, or values:
        # (batch_size, no. of queries or key-value pairs, num_hiddens)
        # Shape of valid_lens: (batch_size,) or (batch_size, no. of queries)
        # After transposing, shape of output queries, keys, or values:
        # (batch_size * num_heads, no. of queries or key-value pairs,
        # num_hiddens / num_heads)
        queries = self.transpose_qkv(self.W_q(queries))
        keys = self.transpose_qkv(self.W_k(keys))
        values = self.transpose_qkv(self.W_v(values))

        if valid_lens is not None:
            # On axis 0, copy the first item (scalar or vector) for num_heads
            # times, then copy the next item, and so on
            valid_lens = torch.repeat_interleave(
                valid_lens, repeats=self.num_heads, dim=0)

        # Shape of output: (batch_size * num_heads, no. of queries,
        # num_hiddens / num_heads)
        output = self.attention(queries, keys, values, valid_lens)
        # Shape of output_concat: (batch_size, no. of queries, num_hiddens)
        output_concat = self.transpose_output(output)
        weights = self.attention.attention_weights
        return self.W_o(output_concat), weights.reshape(-1, self.num_heads, *weights.shape[1:])

    def transpose_qkv(self, X):
        """Transposition for parallel computation of multiple attention heads."""
        # Shape of input X: (batch_size, no. of queries or key-value pairs,
        # num_hiddens). Shape of output X: (batch_size, no. of queries or
        # key-value pairs, num_heads, num_hiddens / num_heads)
        X = X.reshape(X.shape[0], X.shape[1], self.num_heads, -1)
        # Shape of output X: (batch_size, num_heads, no. of queries or key-value
        # pairs, num_hiddens / num_heads)
        X = X.permute(0, 2, 1, 3)
        # Shape of output: (batch_size * num_heads, no. of queries or key-value
        # pairs, num_hiddens / num_heads)
        return X.reshape(-1, X.shape[2], X.shape[3])

    def transpose_output(self, X):
        """Reverse the operation of transpose_qkv."""
        X = X.reshape(-1, self.num_heads, X.shape[1], X.shape[2])
        X = X.permute(0, 2, 1, 3)
        return X.reshape(X.shape[0], X.shape[1], -1)
'''},
        loses={"test_mha_masks": "(causal mask [5, 5], d_model=8, 2 heads, B=2) raised IndexError"},
        adapted="d2l.Module -> nn.Module and LazyLinear(num_hiddens) -> Linear(num_hiddens, num_hiddens) "
                "(d2l infers in_features lazily; the contract fixes nn.Linear(d_model, d_model)); bias "
                "default True (the contract's); forward's fourth argument is named mask and bound to "
                "valid_lens; it also returns the weights DotProductAttention stores, reshaped from "
                "[B*h, T_q, T_k] to [B, h, T_q, T_k]. Deviates: d2l masks with valid lengths (valid_lens), "
                "not a boolean mask, so a bool mask is misread.",
    ),
    Implementation(
        name="c_hyunwoongko_mha",
        assignment="05_multi_head",
        source=("hyunwoongko/transformer, models/layers/multi_head_attention.py and "
                "models/layers/scale_dot_product_attention.py, commit 63286547b9cd174a6cfc204832271814d685181f, "
                "MultiHeadAttention and ScaleDotProductAttention"),
        cells={"MultiHeadAttention": '''\
class ScaleDotProductAttention(nn.Module):
    """
    compute scale dot product attention

    Query : given sentence that we focused on (decoder)
    Key : every sentence to check relationship with Query(encoder)
    Value : every sentence same with Key (encoder)
    """

    def __init__(self):
        super(ScaleDotProductAttention, self).__init__()
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, q, k, v, mask=None, e=1e-12):
        # input is 4 dimension tensor
        # [batch_size, head, length, d_tensor]
        batch_size, head, length, d_tensor = k.size()

        # 1. dot product Query with Key^T to compute similarity
        k_t = k.transpose(2, 3)  # transpose
        score = (q @ k_t) / math.sqrt(d_tensor)  # scaled dot product

        # 2. apply masking (opt)
        if mask is not None:
            score = score.masked_fill(mask == 0, -10000)

        # 3. pass them softmax to make [0, 1] range
        score = self.softmax(score)

        # 4. multiply with Value
        v = score @ v

        return v, score


class MultiHeadAttention(nn.Module):

    def __init__(self, d_model, n_head, dropout=0.0, bias=True):
        super(MultiHeadAttention, self).__init__()
        self.n_head = n_head
        self.attention = ScaleDotProductAttention()
        self.W_q = nn.Linear(d_model, d_model, bias=bias)
        self.W_k = nn.Linear(d_model, d_model, bias=bias)
        self.W_v = nn.Linear(d_model, d_model, bias=bias)
        self.W_o = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, q, k, v, mask=None):
        # 1. dot product with weight matrices
        q, k, v = self.W_q(q), self.W_k(k), self.W_v(v)

        # 2. split tensor by number of heads
        q, k, v = self.split(q), self.split(k), self.split(v)

        # 3. do scale dot product to compute similarity
        out, attention = self.attention(q, k, v, mask=mask)

        # 4. concat and pass to linear layer
        out = self.concat(out)
        out = self.W_o(out)

        # 5. visualize attention map
        # TODO : we should implement visualization

        return out, attention

    def split(self, tensor):
        """
        split tensor by number of head

        :param tensor: [batch_size, length, d_model]
        :return: [batch_size, head, length, d_tensor]
        """
        batch_size, length, d_model = tensor.size()

        d_tensor = d_model // self.n_head
        tensor = tensor.view(batch_size, length, self.n_head, d_tensor).transpose(1, 2)
        # it is similar with group convolution (split by number of heads)

        return tensor

    def concat(self, tensor):
        """
        inverse function of self.split(tensor : torch.Tensor)

        :param tensor: [batch_size, head, length, d_tensor]
        :return: [batch_size, length, d_model]
        """
        batch_size, head, length, d_tensor = tensor.size()
        d_model = head * d_tensor

        tensor = tensor.transpose(1, 2).contiguous().view(batch_size, length, d_model)
        return tensor
'''},
        loses={"test_mha_masks": "not broadcast over the heads"},
        adapted="w_q, w_k, w_v, w_concat renamed W_q, W_k, W_v, W_o; constructor gains the contract's "
                "dropout (unused: the original has no attention dropout) and bias (passed to the Linear "
                "layers); forward returns (out, attention), the weights it already computes. Deviates: "
                "the mask is applied to [B, h, T_q, T_k] scores as given, so a [B, T_q, T_k] or [B, 1, T_k] "
                "mask lines its batch axis up with the head axis (its own model passes 4-D masks).",
    ),
    Implementation(
        name="c_mingpt_csa",
        assignment="05_multi_head",
        source=("karpathy/minGPT, mingpt/model.py, commit 3ed14b2cec0dfdad3f4b2831f2b4a86d11aef150, "
                "CausalSelfAttention"),
        cells={"MultiHeadAttention": '''\
from types import SimpleNamespace

import torch.nn.functional as F


class MultiHeadAttention(nn.Module):
    """
    A vanilla multi-head masked self-attention layer with a projection at the end.
    It is possible to use torch.nn.MultiheadAttention here but I am including an
    explicit implementation here to show that there is nothing too scary here.
    """

    def __init__(self, d_model, num_heads, dropout=0.0, bias=True, block_size=1024):
        super().__init__()
        config = SimpleNamespace(n_embd=d_model, n_head=num_heads, attn_pdrop=dropout,
                                 resid_pdrop=dropout, block_size=block_size)
        assert config.n_embd % config.n_head == 0
        # key, query, value projections for all heads
        self.W_k = nn.Linear(config.n_embd, config.n_embd, bias=bias)
        self.W_q = nn.Linear(config.n_embd, config.n_embd, bias=bias)
        self.W_v = nn.Linear(config.n_embd, config.n_embd, bias=bias)
        # regularization
        self.attn_drop = nn.Dropout(config.attn_pdrop)
        self.resid_drop = nn.Dropout(config.resid_pdrop)
        # output projection
        self.W_o = nn.Linear(config.n_embd, config.n_embd, bias=bias)
        # causal mask to ensure that attention is only applied to the left in the input sequence
        self.register_buffer("mask", torch.tril(torch.ones(config.block_size, config.block_size))
                                     .view(1, 1, config.block_size, config.block_size))
        self.n_head = config.n_head

    def forward(self, x):
        B, T, C = x.size() # batch size, sequence length, embedding dimensionality (n_embd)

        # calculate query, key, values for all heads in batch and move head forward to be the batch dim
        k = self.W_k(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2) # (B, nh, T, hs)
        q = self.W_q(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2) # (B, nh, T, hs)
        v = self.W_v(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2) # (B, nh, T, hs)

        # causal self-attention; Self-attend: (B, nh, T, hs) x (B, nh, hs, T) -> (B, nh, T, T)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.mask[:,:,:T,:T] == 0, float('-inf'))
        att = F.softmax(att, dim=-1)
        att = self.attn_drop(att)
        y = att @ v # (B, nh, T, T) x (B, nh, T, hs) -> (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C) # re-assemble all head outputs side by side

        # output projection
        y = self.resid_drop(self.W_o(y))
        return y
'''},
        loses={
            "test_mha_shapes": "forward() takes 2 positional arguments but 4 were given",
            "test_mha_matches_builtin": "forward() takes 2 positional arguments but 4 were given",
            "test_mha_masks": "unexpected keyword argument 'mask'",
        },
        adapted="The config object is built from the contract's arguments (block_size, which the contract "
                "lacks, defaults to GPT-2's 1024); key, query, value, proj renamed W_k, W_q, W_v, W_o, with "
                "the contract's bias. Deviates: it is causal self-attention only: forward(x) takes no "
                "separate key, value or mask, always applies its causal mask, and returns no weights.",
    ),
]
