"""10_transformer: the post-LN decoder layer built from the notebook's MultiHeadAttention."""
from . import Implementation

IMPLEMENTATIONS = [
    Implementation(
        name="c_pt_decoder_layer",
        assignment="10_transformer",
        source=("pytorch/pytorch, torch/nn/modules/transformer.py, commit cf30153c4c131c8164ee7798e5022d810682e2cb, "
                "TransformerDecoderLayer (__init__, forward, _sa_block, _mha_block, _ff_block) and _get_activation_fn"),
        cells={"TransformerDecoderLayer": '''\
from collections.abc import Callable

from torch import Tensor
from torch.nn import Dropout, LayerNorm, Linear, Module


def _get_activation_fn(activation: str) -> Callable[[Tensor], Tensor]:
    if activation == "relu":
        return F.relu
    elif activation == "gelu":
        return F.gelu

    raise RuntimeError(f"activation should be relu/gelu, not {activation}")


class TransformerDecoderLayer(Module):
    r"""TransformerDecoderLayer is made up of self-attn, multi-head-attn and feedforward network."""

    __constants__ = ["norm_first"]

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = F.relu,
        layer_norm_eps: float = 1e-5,
        norm_first: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(
            d_model,
            nhead,
            dropout=dropout,
            bias=bias,
        )
        self.multihead_attn = MultiHeadAttention(
            d_model,
            nhead,
            dropout=dropout,
            bias=bias,
        )
        # Implementation of Feedforward model
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)

        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)

        # Legacy string support for activation function.
        if isinstance(activation, str):
            self.activation = _get_activation_fn(activation)
        else:
            self.activation = activation

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
    ) -> Tensor:
        tgt_key_padding_mask = memory_key_padding_mask = None
        tgt_is_causal = memory_is_causal = False
        # see Fig. 1 of https://arxiv.org/pdf/2002.04745v1.pdf

        x = tgt
        if self.norm_first:
            x = x + self._sa_block(
                self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal
            )
            x = x + self._mha_block(
                self.norm2(x),
                memory,
                memory_mask,
                memory_key_padding_mask,
                memory_is_causal,
            )
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(
                x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            )
            x = self.norm2(
                x
                + self._mha_block(
                    x, memory, memory_mask, memory_key_padding_mask, memory_is_causal
                )
            )
            x = self.norm3(x + self._ff_block(x))

        return x

    # self-attention block
    def _sa_block(
        self,
        x: Tensor,
        attn_mask: Tensor | None,
        key_padding_mask: Tensor | None,
        is_causal: bool = False,
    ) -> Tensor:
        # the course's MultiHeadAttention takes one bool mask, True = may attend
        x = self.self_attn(x, x, x, attn_mask)[0]
        return self.dropout1(x)

    # multihead attention block
    def _mha_block(
        self,
        x: Tensor,
        mem: Tensor,
        attn_mask: Tensor | None,
        key_padding_mask: Tensor | None,
        is_causal: bool = False,
    ) -> Tensor:
        x = self.multihead_attn(x, mem, mem, attn_mask)[0]
        return self.dropout2(x)

    # feed forward block
    def _ff_block(self, x: Tensor) -> Tensor:
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout3(x)
'''},
        adapted="PyTorch's own layer with both nn.MultiheadAttention modules replaced by the notebook's "
                "MultiHeadAttention, called with the contract's bool masks (True = may attend) instead of "
                "PyTorch's attn_mask (True = blocked); the key-padding and is_causal arguments and "
                "batch_first/device/dtype are left out of the signature.",
    ),
    Implementation(
        name="c_hf_bart_decoder_layer",
        assignment="10_transformer",
        source=("huggingface/transformers, src/transformers/models/bart/modeling_bart.py, "
                "commit 00646d2acdbadd8e96384d62aa9cc1370cf358d5, BartDecoderLayer"),
        cells={"TransformerDecoderLayer": '''\
from types import SimpleNamespace

ACT2FN = {"gelu": nn.functional.gelu, "relu": nn.functional.relu}  # what transformers.activations maps these to


class TransformerDecoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, dim_feedforward, dropout=0.1):
        super().__init__()
        # BartConfig's defaults for everything the contract does not name
        config = SimpleNamespace(d_model=d_model, decoder_attention_heads=num_heads,
                                 decoder_ffn_dim=dim_feedforward, dropout=dropout, attention_dropout=0.0,
                                 activation_dropout=0.0, activation_function="gelu")
        self.embed_dim = config.d_model

        self.self_attn = MultiHeadAttention(
            self.embed_dim,
            config.decoder_attention_heads,
            dropout=config.attention_dropout,
        )
        self.dropout = config.dropout
        self.activation_fn = ACT2FN[config.activation_function]
        self.activation_dropout = config.activation_dropout

        self.norm1 = nn.LayerNorm(self.embed_dim)
        self.multihead_attn = MultiHeadAttention(
            self.embed_dim,
            config.decoder_attention_heads,
            dropout=config.attention_dropout,
        )
        self.norm2 = nn.LayerNorm(self.embed_dim)
        self.linear1 = nn.Linear(self.embed_dim, config.decoder_ffn_dim)
        self.linear2 = nn.Linear(config.decoder_ffn_dim, self.embed_dim)
        self.norm3 = nn.LayerNorm(self.embed_dim)

    def forward(self, hidden_states, encoder_hidden_states, tgt_mask=None, memory_mask=None):
        attention_mask, encoder_attention_mask = tgt_mask, memory_mask
        residual = hidden_states

        # Self Attention
        hidden_states, self_attn_weights = self.self_attn(
            hidden_states, hidden_states, hidden_states, attention_mask
        )
        hidden_states = nn.functional.dropout(hidden_states, p=self.dropout, training=self.training)
        hidden_states = residual + hidden_states
        hidden_states = self.norm1(hidden_states)

        # Cross-Attention Block
        cross_attn_weights = None
        if encoder_hidden_states is not None:
            residual = hidden_states

            hidden_states, cross_attn_weights = self.multihead_attn(
                hidden_states, encoder_hidden_states, encoder_hidden_states, encoder_attention_mask
            )
            hidden_states = nn.functional.dropout(hidden_states, p=self.dropout, training=self.training)
            hidden_states = residual + hidden_states
            hidden_states = self.norm2(hidden_states)

        # Fully Connected
        residual = hidden_states
        hidden_states = self.activation_fn(self.linear1(hidden_states))
        hidden_states = nn.functional.dropout(hidden_states, p=self.activation_dropout, training=self.training)
        hidden_states = self.linear2(hidden_states)
        hidden_states = nn.functional.dropout(hidden_states, p=self.dropout, training=self.training)
        hidden_states = residual + hidden_states
        hidden_states = self.norm3(hidden_states)

        return hidden_states
'''},
        loses={
            "test_decoder_matches_builtin": "GELU",
            "test_decoder_cross_attention": "GELU",
            "test_decoder_causal": "GELU",
            "test_transformer_forward": "GELU",
        },
        adapted="The config is built from the contract's arguments with BartConfig's defaults for the rest; "
                "BartAttention replaced by the notebook's MultiHeadAttention (called as (q, k, v, mask), "
                "returning (output, weights); cache and head masks dropped); self_attn_layer_norm, "
                "encoder_attn, encoder_attn_layer_norm, fc1, fc2, final_layer_norm renamed norm1, "
                "multihead_attn, norm2, linear1, linear2, norm3; masks are the contract's bool masks "
                "instead of BART's additive float masks. Deviates: BART's feed-forward uses GELU "
                "(activation_function='gelu'), where the contract's reference, nn.TransformerDecoderLayer, "
                "uses ReLU; the solution's Transformer stacks this layer and differs for the same reason.",
    ),
]
