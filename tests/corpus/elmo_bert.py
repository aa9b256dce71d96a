"""09_elmo_bert: ELMo's scalar mix, BERT's masked-LM corruption, the encoder layer, freezing."""
from . import Implementation

IMPLEMENTATIONS = [
    Implementation(
        name="c_allennlp_scalar_mix",
        assignment="09_elmo_bert",
        source=("allenai/allennlp, allennlp/modules/scalar_mix.py, commit 80fb6061e568cb9d6ab5d45b661e86eb61b92c82, "
                "ScalarMix.forward (do_layer_norm=False)"),
        cells={"scalar_mix": '''\
def scalar_mix(tensors, s, gamma):
    # ScalarMix keeps one [1]-shaped Parameter per layer and a gamma Parameter
    scalar_parameters = s.split(1)
    normed_weights = torch.nn.functional.softmax(
        torch.cat([parameter for parameter in scalar_parameters]), dim=0
    )
    normed_weights = torch.split(normed_weights, split_size_or_sections=1)

    pieces = []
    for weight, tensor in zip(normed_weights, tensors):
        pieces.append(weight * tensor)
    return gamma * sum(pieces)
'''},
        adapted="The do_layer_norm=False path of ScalarMix.forward as a function of the layers, s and gamma "
                "(the module's ParameterList of [1]-shaped scalars is s.split(1)).",
    ),
    Implementation(
        name="c_hf_mask_tokens",
        assignment="09_elmo_bert",
        source=("huggingface/transformers, src/transformers/data/data_collator.py, "
                "commit 002786aa3512b54b23f20a978ad8b88bdc33d9a2, DataCollatorForLanguageModeling.torch_mask_tokens"),
        cells={"mask_tokens": '''\
def mask_tokens(inputs, mask_token_id, vocab_size, special_tokens_mask=None, mlm_probability=0.15,
                generator=None):
    """
    Prepare masked tokens inputs/labels for masked language modeling: 80% MASK, 10% random, 10% original.
    """
    import torch

    labels = inputs.clone()
    # We sample a few tokens in each sequence for MLM training (with probability `self.mlm_probability`)
    probability_matrix = torch.full(labels.shape, mlm_probability)
    if special_tokens_mask is None:
        # no tokenizer to ask: no position is special
        special_tokens_mask = torch.zeros(labels.shape, dtype=torch.bool)
    else:
        special_tokens_mask = special_tokens_mask.bool()

    probability_matrix.masked_fill_(special_tokens_mask, value=0.0)
    masked_indices = torch.bernoulli(probability_matrix).bool()
    labels[~masked_indices] = -100  # We only compute loss on masked tokens

    # 80% of the time, we replace masked input tokens with tokenizer.mask_token ([MASK])
    indices_replaced = torch.bernoulli(torch.full(labels.shape, 0.8)).bool() & masked_indices
    inputs[indices_replaced] = mask_token_id

    # 10% of the time, we replace masked input tokens with random word
    indices_random = torch.bernoulli(torch.full(labels.shape, 0.5)).bool() & masked_indices & ~indices_replaced
    random_words = torch.randint(vocab_size, labels.shape, dtype=torch.long)
    inputs[indices_random] = random_words[indices_random]

    # The rest of the time (10% of the time) we keep the masked input tokens unchanged
    return inputs, labels
'''},
        loses={
            "test_mask_tokens_labels": "modified in place",
            "test_mask_tokens_proportions": "modified in place",
        },
        adapted="self.mlm_probability, the tokenizer's [MASK] id and len(self.tokenizer) are the "
                "arguments; without a tokenizer, special_tokens_mask=None means no special positions. "
                "Deviates: it writes [MASK] and random ids into input_ids itself (the collator owns its "
                "freshly padded batch), and draws from the global RNG, ignoring the generator. The visible "
                "proportions test reads input_ids after the call, so it fails for the same reason.",
    ),
    Implementation(
        name="c_bertpytorch_random_word",
        assignment="09_elmo_bert",
        source=("codertimo/BERT-pytorch, bert_pytorch/dataset/dataset.py, "
                "commit d10dc4f9d5a6f2ca74380f62039526eb7277c671, BERTDataset.random_word (and __getitem__'s "
                "labels for [CLS]/[SEP]/padding)"),
        cells={"mask_tokens": '''\
import random


class IdVocab:
    """The three things random_word asks of BERT-pytorch's WordVocab, for tokens that are already ids."""

    def __init__(self, vocab_size, mask_index):
        self.pad_index, self.unk_index, self.mask_index = 0, 1, mask_index
        self.stoi = {i: i for i in range(vocab_size)}

    def __len__(self):
        return len(self.stoi)


class BERTDataset:
    def __init__(self, vocab, mlm_probability=0.15):
        self.vocab = vocab
        self.mlm_probability = mlm_probability

    def random_word(self, sentence):
        tokens = list(sentence)
        output_label = []

        for i, token in enumerate(tokens):
            prob = random.random()
            if prob < self.mlm_probability:
                prob /= self.mlm_probability

                # 80% randomly change token to mask token
                if prob < 0.8:
                    tokens[i] = self.vocab.mask_index

                # 10% randomly change token to random token
                elif prob < 0.9:
                    tokens[i] = random.randrange(len(self.vocab))

                # 10% randomly change token to current token
                else:
                    tokens[i] = self.vocab.stoi.get(token, self.vocab.unk_index)

                output_label.append(self.vocab.stoi.get(token, self.vocab.unk_index))

            else:
                tokens[i] = self.vocab.stoi.get(token, self.vocab.unk_index)
                output_label.append(0)

        return tokens, output_label


def mask_tokens(input_ids, mask_token_id, vocab_size, special_tokens_mask=None, mlm_probability=0.15,
                generator=None):
    dataset = BERTDataset(IdVocab(vocab_size, mask_token_id), mlm_probability)
    rows = input_ids.reshape(-1, input_ids.shape[-1]).tolist()
    special = (special_tokens_mask.reshape(-1, input_ids.shape[-1]).tolist() if special_tokens_mask is not None
               else [[False] * input_ids.shape[-1] for _ in rows])
    corrupted, labels = [], []
    for row, row_special in zip(rows, special):
        # random_word sees the words only; [CLS], [SEP] and padding get the label pad_index, as in __getitem__
        t_random, t_label = dataset.random_word([t for t, s in zip(row, row_special) if not s])
        words = iter(zip(t_random, t_label))
        out, lab = [], []
        for t, s in zip(row, row_special):
            r, l = (t, dataset.vocab.pad_index) if s else next(words)
            out.append(r)
            lab.append(l)
        corrupted.append(out)
        labels.append(lab)
    return (torch.tensor(corrupted).reshape(input_ids.shape),
            torch.tensor(labels).reshape(input_ids.shape))
'''},
        loses={
            "test_mask_tokens_labels": "-100",
            "test_mask_tokens_proportions": "-100",
        },
        adapted="random_word verbatim except that its sentence is already a list of ids (sentence.split() "
                "-> list(sentence), the vocabulary an identity IdVocab) and its literal 0.15 is "
                "mlm_probability; mask_tokens runs it on each row's non-special tokens and gives special "
                "positions the label pad_index, as BERTDataset.__getitem__ does for [CLS]/[SEP]/padding. "
                "Deviates: unselected positions get the label 0 (BERT-pytorch's pad index, ignored by its "
                "NLLLoss(ignore_index=0)) instead of -100; it draws from Python's global random, not the "
                "generator.",
    ),
    Implementation(
        name="c_pt_encoder_layer",
        assignment="09_elmo_bert",
        source=("pytorch/pytorch, torch/nn/modules/transformer.py, commit cf30153c4c131c8164ee7798e5022d810682e2cb, "
                "TransformerEncoderLayer (__init__, the non-fast-path forward, _sa_block, _ff_block) and "
                "_get_activation_fn"),
        cells={"TransformerEncoderLayer": '''\
from collections.abc import Callable

from torch import Tensor
from torch.nn import Dropout, LayerNorm, Linear, Module


def _get_activation_fn(activation: str) -> Callable[[Tensor], Tensor]:
    if activation == "relu":
        return F.relu
    elif activation == "gelu":
        return F.gelu

    raise RuntimeError(f"activation should be relu/gelu, not {activation}")


class TransformerEncoderLayer(Module):
    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "gelu",
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
        # Implementation of Feedforward model
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)

        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)

        # Legacy string support for activation function.
        if isinstance(activation, str):
            activation = _get_activation_fn(activation)

        # We can't test self.activation in forward() in TorchScript,
        # so stash some information about it instead.
        if activation is F.relu or isinstance(activation, torch.nn.ReLU):
            self.activation_relu_or_gelu = 1
        elif activation is F.gelu or isinstance(activation, torch.nn.GELU):
            self.activation_relu_or_gelu = 2
        else:
            self.activation_relu_or_gelu = 0
        self.activation = activation

    def forward(self, src: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        src_mask, src_key_padding_mask, is_causal = None, padding_mask, False
        # see Fig. 1 of https://arxiv.org/pdf/2002.04745v1.pdf
        x = src
        if self.norm_first:
            x = x + self._sa_block(
                self.norm1(x), src_mask, src_key_padding_mask, is_causal=is_causal
            )
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(
                x
                + self._sa_block(x, src_mask, src_key_padding_mask, is_causal=is_causal)
            )
            x = self.norm2(x + self._ff_block(x))

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
        mask = None if key_padding_mask is None else key_padding_mask[:, None, :]
        x = self.self_attn(x, x, x, mask)[0]
        return self.dropout1(x)

    # feed forward block
    def _ff_block(self, x: Tensor) -> Tensor:
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout2(x)
'''},
        adapted="PyTorch's own layer with nn.MultiheadAttention replaced by the notebook's "
                "MultiHeadAttention (the contract's self_attn), the fast path (a fused built-in kernel) and "
                "the batch_first/device/dtype arguments left out, activation defaulting to the contract's "
                "'gelu'; forward(src, padding_mask) passes the padding mask (True at real tokens) to "
                "self_attn as [B, 1, T] instead of PyTorch's src_key_padding_mask (True at pads).",
    ),
    Implementation(
        name="c_uvadlc_encoder_block",
        assignment="09_elmo_bert",
        source=("phlippe/uvadlc_notebooks, docs/tutorial_notebooks/tutorial6/Transformers_and_MHAttention.ipynb, "
                "commit 0da8037c7abc32f478ff6142acceb72dbcf088ee, EncoderBlock"),
        cells={"TransformerEncoderLayer": '''\
class TransformerEncoderLayer(nn.Module):

    def __init__(self, input_dim, num_heads, dim_feedforward, dropout=0.1, activation="gelu"):
        """
        Inputs:
            input_dim - Dimensionality of the input
            num_heads - Number of heads to use in the attention block
            dim_feedforward - Dimensionality of the hidden layer in the MLP
            dropout - Dropout probability to use in the dropout layers
        """
        super().__init__()

        # Attention layer
        self.self_attn = MultiHeadAttention(input_dim, num_heads)

        # Two-layer MLP
        self.linear_net = nn.Sequential(
            nn.Linear(input_dim, dim_feedforward),
            nn.Dropout(dropout),
            nn.ReLU(inplace=True),
            nn.Linear(dim_feedforward, input_dim)
        )
        self.linear1, self.linear2 = self.linear_net[0], self.linear_net[3]

        # Layers to apply in between the main layers
        self.norm1 = nn.LayerNorm(input_dim)
        self.norm2 = nn.LayerNorm(input_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, padding_mask=None):
        mask = None if padding_mask is None else padding_mask.unsqueeze(1)
        # Attention part
        attn_out = self.self_attn(x, x, x, mask)[0]
        x = x + self.dropout(attn_out)
        x = self.norm1(x)

        # MLP part
        linear_out = self.linear_net(x)
        x = x + self.dropout(linear_out)
        x = self.norm2(x)

        return x
'''},
        loses={
            "test_encoder_layer": "activation",
            "test_encoder_layer_padding": "activation",
        },
        adapted="EncoderBlock renamed; the tutorial's own MultiheadAttention(x, mask=...) replaced by the "
                "notebook's MultiHeadAttention called as (x, x, x, mask)[0]; the Sequential's two Linear "
                "layers are also exposed as linear1/linear2 (the contract's names); forward takes the "
                "contract's padding_mask [B, T] and gives it to attention as [B, 1, T]. Deviates: the "
                "feed-forward activation is always ReLU; the activation argument is not used.",
    ),
    Implementation(
        name="c_raschka_freeze_count",
        assignment="09_elmo_bert",
        source=("rasbt/LLMs-from-scratch, appendix-E/01_main-chapter-code/appendix-E.ipynb, "
                "commit 28c65cdfbc3338e2e040016eea4b7fdf556e4d57, the cell that counts and freezes parameters"),
        cells={"freeze_and_count": '''\
def freeze_(model):
    for param in model.parameters():
        param.requires_grad = False
    return model


def count_trainable_parameters(model):
    total_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total_params
'''},
        adapted="The two statements of the notebook cell as the two contract functions (freeze_ returns "
                "the module it was given).",
    ),
]
