"""08_positional_encoding: the sinusoidal table, the PositionalEncoding module and scaled token embeddings."""
from . import Implementation

IMPLEMENTATIONS = [
    Implementation(
        name="c_fairseq_sinusoidal",
        assignment="08_positional_encoding",
        source=("facebookresearch/fairseq, fairseq/modules/sinusoidal_positional_embedding.py, "
                "commit 3d262bb25690e4eb2e7d3c1309b1e9c406ca4b99, SinusoidalPositionalEmbedding.get_embedding"),
        cells={"sinusoidal_positional_encoding": '''\
from typing import Optional


def sinusoidal_positional_encoding(
    num_embeddings: int, embedding_dim: int, base=10000.0, padding_idx: Optional[int] = None
):
    """Build sinusoidal embeddings.

    This matches the implementation in tensor2tensor, but differs slightly
    from the description in Section 3.5 of "Attention Is All You Need".
    """
    half_dim = embedding_dim // 2
    emb = math.log(base) / (half_dim - 1)
    emb = torch.exp(torch.arange(half_dim, dtype=torch.float) * -emb)
    emb = torch.arange(num_embeddings, dtype=torch.float).unsqueeze(
        1
    ) * emb.unsqueeze(0)
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1).view(
        num_embeddings, -1
    )
    if embedding_dim % 2 == 1:
        # zero pad
        emb = torch.cat([emb, torch.zeros(num_embeddings, 1)], dim=1)
    if padding_idx is not None:
        emb[padding_idx, :] = 0
    return emb
'''},
        loses={
            "test_pe_basics": "concatenated as two halves",
            "test_pe_values": "concatenated",
            "test_positional_encoding": "concatenated",
        },
        adapted="get_embedding renamed; its literal 10000 is the base argument. Deviates, as its docstring "
                "says: the tensor2tensor layout, sines and cosines as two concatenated halves with "
                "frequencies 1 / base^(i / (d/2 - 1)), not interleaved with 1 / base^(2i/d); an odd "
                "embedding_dim is zero-padded instead of rejected. The solution's PositionalEncoding "
                "builds its buffer from this function and inherits the layout.",
    ),
    Implementation(
        name="c_hf_distilbert_sinusoidal",
        assignment="08_positional_encoding",
        source=("huggingface/transformers, src/transformers/models/distilbert/modeling_distilbert.py, "
                "commit 00b326f4caca2d1fbebe5c86e1693475fd4d0c9a, _create_sinusoidal_embeddings"),
        cells={"sinusoidal_positional_encoding": '''\
import numpy as np


def _create_sinusoidal_embeddings(n_pos: int, dim: int, out: torch.Tensor, base=10000.0):
    position_enc = np.array([[pos / np.power(base, 2 * (j // 2) / dim) for j in range(dim)] for pos in range(n_pos)])
    out.requires_grad = False
    out[:, 0::2] = torch.FloatTensor(np.sin(position_enc[:, 0::2]))
    out[:, 1::2] = torch.FloatTensor(np.cos(position_enc[:, 1::2]))
    out.detach_()


def sinusoidal_positional_encoding(max_len, d_model, base=10000.0):
    out = torch.empty(max_len, d_model)
    _create_sinusoidal_embeddings(n_pos=max_len, dim=d_model, out=out, base=base)
    return out
'''},
        loses={"test_pe_basics": "must raise ValueError"},
        adapted="_create_sinusoidal_embeddings fills a given tensor; the function allocates it "
                "[max_len, d_model] and returns it; its literal 10000 is the base argument. Deviates only "
                "in that an odd d_model is accepted (an odd last sine column) instead of raising ValueError.",
    ),
    Implementation(
        name="c_hyunwoongko_sinusoidal",
        assignment="08_positional_encoding",
        source=("hyunwoongko/transformer, models/embedding/positional_encoding.py, "
                "commit 63286547b9cd174a6cfc204832271814d685181f, PositionalEncoding.__init__"),
        cells={"sinusoidal_positional_encoding": '''\
def sinusoidal_positional_encoding(max_len, d_model, base=10000.0, device=None):
    """
    compute sinusoid encoding.
    """
    # same size with input matrix (for adding with input matrix)
    encoding = torch.zeros(max_len, d_model, device=device)
    encoding.requires_grad = False  # we don't need to compute gradient

    pos = torch.arange(0, max_len, device=device)
    pos = pos.float().unsqueeze(dim=1)
    # 1D => 2D unsqueeze to represent word's position

    _2i = torch.arange(0, d_model, step=2, device=device).float()
    # 'i' means index of d_model (e.g. embedding size = 50, 'i' = [0,50])
    # "step=2" means 'i' multiplied with two (same with 2 * i)

    encoding[:, 0::2] = torch.sin(pos / (base ** (_2i / d_model)))
    encoding[:, 1::2] = torch.cos(pos / (base ** (_2i / d_model)))
    # compute positional encoding to consider positional information of words
    return encoding
'''},
        loses={"test_pe_basics": "expected ValueError"},
        adapted="The table computed in PositionalEncoding.__init__, returned by a function (self.encoding "
                "is a local); its literal 10000 is the base argument. Deviates only for an odd d_model: "
                "the cosine assignment fails with a RuntimeError instead of the contract's ValueError.",
    ),
    Implementation(
        name="c_annotated_posenc",
        assignment="08_positional_encoding",
        source=("harvardnlp/annotated-transformer, the_annotated_transformer.py, "
                "commit debc9fd747bb2123160a98046ad1c2d4da44a567, PositionalEncoding"),
        cells={"PositionalEncoding": '''\
class PositionalEncoding(nn.Module):
    "Implement the PE function."

    def __init__(self, d_model, max_len=5000, dropout=0.0):
        super(PositionalEncoding, self).__init__()
        self.dropout = nn.Dropout(p=dropout)

        # Compute the positional encodings once in log space.
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len).unsqueeze(1)
        div_term = torch.exp(
            torch.arange(0, d_model, 2) * -(math.log(10000.0) / d_model)
        )
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        pe = pe.unsqueeze(0)
        self.register_buffer("pe", pe)

    def forward(self, x):
        x = x + self.pe[:, : x.size(1)].requires_grad_(False)
        return self.dropout(x)
'''},
        loses={"test_positional_encoding": "[max_len, d_model]"},
        adapted="Constructor (d_model, dropout, max_len=5000) reordered to (d_model, max_len=5000, "
                "dropout=0.0). Deviates: the buffer pe is [1, max_len, d_model] (a batch axis added with "
                "unsqueeze(0)), and a sequence longer than max_len fails with a broadcasting RuntimeError "
                "instead of ValueError.",
    ),
    Implementation(
        name="c_pt_examples_posenc",
        assignment="08_positional_encoding",
        source=("pytorch/examples, word_language_model/model.py, commit 77f55b912142e11fcfdf5b530231fb9c52f181e8, "
                "PositionalEncoding"),
        cells={"PositionalEncoding": '''\
class PositionalEncoding(nn.Module):
    r"""Inject some information about the relative or absolute position of the tokens in the sequence.
        The positional encodings have the same dimension as the embeddings, so that the two can be summed.
        Here, we use sine and cosine functions of different frequencies.
    """

    def __init__(self, d_model, max_len=5000, dropout=0.0):
        super(PositionalEncoding, self).__init__()
        self.dropout = nn.Dropout(p=dropout)

        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        pe = pe.unsqueeze(0).transpose(0, 1)
        self.register_buffer('pe', pe)

    def forward(self, x):
        r"""Inputs of forward function
        Args:
            x: the sequence fed to the positional encoder model (required).
        Shape:
            x: [sequence length, batch size, embed dim]
            output: [sequence length, batch size, embed dim]
        """

        x = x + self.pe[:x.size(0), :]
        return self.dropout(x)
'''},
        loses={"test_positional_encoding": "[max_len, d_model]"},
        adapted="Constructor (d_model, dropout=0.1, max_len=5000) reordered to (d_model, max_len=5000, "
                "dropout=0.0). Deviates: it is sequence-first, x [T, B, d] with pe [max_len, 1, d], so on "
                "the contract's batch-first [B, T, d] it adds pe[:B] (sliced by the batch size); no "
                "ValueError for T > max_len.",
    ),
    Implementation(
        name="c_uvadlc_posenc",
        assignment="08_positional_encoding",
        source=("phlippe/uvadlc_notebooks, docs/tutorial_notebooks/tutorial6/Transformers_and_MHAttention.ipynb, "
                "commit 0da8037c7abc32f478ff6142acceb72dbcf088ee, PositionalEncoding"),
        cells={"PositionalEncoding": '''\
class PositionalEncoding(nn.Module):

    def __init__(self, d_model, max_len=5000, dropout=0.0):
        """
        Inputs
            d_model - Hidden dimensionality of the input.
            max_len - Maximum length of a sequence to expect.
        """
        super().__init__()

        # Create matrix of [SeqLen, HiddenDim] representing the positional encoding for max_len inputs
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        pe = pe.unsqueeze(0)

        # register_buffer => Tensor which is not a parameter, but should be part of the modules state.
        # Used for tensors that need to be on the same device as the module.
        # persistent=False tells PyTorch to not add the buffer to the state dict (e.g. when we save the model)
        self.register_buffer('pe', pe, persistent=False)

    def forward(self, x):
        x = x + self.pe[:, :x.size(1)]
        return x
'''},
        loses={"test_positional_encoding": "[max_len, d_model]"},
        adapted="The contract's dropout argument is added (unused: the tutorial applies no dropout here; "
                "in eval mode it would be inactive anyway). Deviates: pe is [1, max_len, d_model], and a "
                "sequence longer than max_len fails with a broadcasting RuntimeError instead of ValueError. "
                "(The buffer is also non-persistent, which the contract does not forbid.)",
    ),
    Implementation(
        name="c_d2l_posenc",
        assignment="08_positional_encoding",
        source=("d2l-ai/d2l-en, d2l/torch.py, commit 23d7a5aecceee57d1292c56e90cce307f183bb0a, PositionalEncoding"),
        cells={"PositionalEncoding": '''\
class PositionalEncoding(nn.Module):
    """Positional encoding."""
    def __init__(self, num_hiddens, max_len=1000, dropout=0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        # Create a long enough pe
        self.pe = torch.zeros((1, max_len, num_hiddens))
        X = torch.arange(max_len, dtype=torch.float32).reshape(
            -1, 1) / torch.pow(10000, torch.arange(
            0, num_hiddens, 2, dtype=torch.float32) / num_hiddens)
        self.pe[:, :, 0::2] = torch.sin(X)
        self.pe[:, :, 1::2] = torch.cos(X)

    def forward(self, X):
        X = X + self.pe[:, :X.shape[1], :].to(X.device)
        return self.dropout(X)
'''},
        loses={"test_positional_encoding": "register_buffer"},
        adapted="P renamed pe; d2l.zeros/d2l.arange written as torch.zeros/torch.arange; constructor "
                "(num_hiddens, dropout, max_len=1000) reordered to (num_hiddens, max_len=1000, "
                "dropout=0.0). Deviates: pe is a plain attribute, not a registered buffer, of shape "
                "[1, max_len, d]; no ValueError for T > max_len.",
    ),
    Implementation(
        name="c_annotated_embeddings",
        assignment="08_positional_encoding",
        source=("harvardnlp/annotated-transformer, the_annotated_transformer.py, "
                "commit debc9fd747bb2123160a98046ad1c2d4da44a567, Embeddings"),
        cells={"TokenEmbedding": '''\
class TokenEmbedding(nn.Module):
    def __init__(self, vocab, d_model):
        super(TokenEmbedding, self).__init__()
        self.embedding = nn.Embedding(vocab, d_model)
        self.d_model = d_model

    def forward(self, x):
        return self.embedding(x) * math.sqrt(self.d_model)
'''},
        adapted="Embeddings renamed TokenEmbedding, lut renamed embedding, constructor (d_model, vocab) "
                "reordered to (vocab, d_model).",
    ),
    Implementation(
        name="c_pt_tutorial_tokemb",
        assignment="08_positional_encoding",
        source=("pytorch/tutorials, beginner_source/translation_transformer.py, "
                "commit 03c85c6b40201567bf24b8b53504e173ff660480, TokenEmbedding"),
        cells={"TokenEmbedding": '''\
from torch import Tensor


# Helper class to convert tensor of input indices into corresponding tesor of token embeddings
class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size: int, emb_size):
        super(TokenEmbedding, self).__init__()
        self.embedding = nn.Embedding(vocab_size, emb_size)
        self.emb_size = emb_size

    def forward(self, tokens: Tensor):
        return self.embedding(tokens.long()) * math.sqrt(self.emb_size)
'''},
        adapted="Verbatim: the tutorial already uses the contract's names.",
    ),
]
