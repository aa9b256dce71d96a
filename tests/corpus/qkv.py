"""02_qkv: query/key/value projections and unscaled scores, from Raschka's SelfAttention_v1."""
from . import Implementation

RASBT = ("rasbt/LLMs-from-scratch, ch03/01_main-chapter-code/ch03.ipynb, "
         "commit 28c65cdfbc3338e2e040016eea4b7fdf556e4d57, SelfAttention_v1.forward")

IMPLEMENTATIONS = [
    Implementation(
        name="c_raschka_project_qkv",
        assignment="02_qkv",
        source=RASBT,
        cells={"project_qkv": '''\
def project_qkv(x, W_query, W_key, W_value):
    keys = x @ W_key
    queries = x @ W_query
    values = x @ W_value
    return queries, keys, values
'''},
        adapted="The first three lines of SelfAttention_v1.forward as a function: self.W_key etc. become "
                "the parameters, and the three projections are returned in the contract's order.",
    ),
    Implementation(
        name="c_raschka_attn_scores",
        assignment="02_qkv",
        source=RASBT,
        cells={"attention_scores": '''\
def attention_scores(queries, keys):
    attn_scores = queries @ keys.T # omega
    return attn_scores
'''},
        loses={"test_attention_scores_batched": "attention_scores fails for batched inputs"},
        adapted="The scores line of SelfAttention_v1.forward as a function. Deviates: keys.T reverses all "
                "dimensions of a batched [..., T, d] tensor (and warns), so only unbatched inputs work.",
    ),
]
