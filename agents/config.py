"""The model's configuration: :class:`GPTConfig`, the presets, and the names of the switches.

Torch-free on purpose: the options of ``lgagent train`` are built from these names, and
``--help`` must not wait for torch. The model itself is :mod:`agents.model`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

NORMS = ("pre", "post", "none")
POSITIONS = ("learned", "none", "rope", "alibi", "learned-random", "rope-random")
# the randomized schemes (Ruoss et al. 2023): training draws each sequence's positions as a
# sorted sample from 0..pos_range-1; evaluation and play use 0..T-1 (agents.model)
RANDOM_POSITIONS = ("learned-random", "rope-random")
LOSSES = ("legal", "next")  # agents.losses: cross-entropy to the legal set, next token


@dataclass
class GPTConfig:
    """Model hyperparameters. ``dataclasses.asdict(cfg)`` is what checkpoints store.

    The ``*_dropout`` fields default to None, meaning "use ``dropout``".
    Invalid values raise ValueError on construction.
    """

    vocab_size: int = 61  # incl. the padding token
    block_size: int = 59  # longest input sequence
    n_layer: int = 8
    n_head: int = 8
    n_embd: int = 512
    # attention head size: q, k, v are n_head * head_dim wide, so the value dimension is
    # n_head * head_dim (None: n_embd // n_head, the GPT default)
    head_dim: int | None = None
    mlp: bool = True  # False: attention-only blocks
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * n_embd
    norm: str = "pre"  # "pre" | "post" | "none"
    pos: str = "learned"  # "learned" | "none" | "rope" | "alibi" | "learned-random" | "rope-random"
    dropout: float = 0.1
    attn_dropout: float | None = None  # on attention probabilities
    resid_dropout: float | None = None  # on each residual branch's output
    embd_dropout: float | None = None  # on token (+ position) embeddings
    bias: bool = True  # biases in Linear layers and LayerNorms (GPT-1/2 have them)
    tie_weights: bool = False  # share the token embedding with the output head
    rope_base: float = 10000.0  # rotary frequency base (pos="rope" / "rope-random")
    # randomized schemes only: training positions are drawn from 0..pos_range-1 (None: the
    # block size, filled in on construction); learned-random's table has pos_range rows
    pos_range: int | None = None

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "mlp_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        hd = self.head_dim
        if hd is not None and (isinstance(hd, bool) or not isinstance(hd, int) or hd < 1):
            raise ValueError(f"GPTConfig.head_dim must be a positive integer or None, got {hd!r}")
        if hd is None and self.n_embd % self.n_head:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
                " (or give head_dim)"
            )
        if self.norm not in NORMS:
            raise ValueError(f"GPTConfig.norm must be one of {NORMS}, got {self.norm!r}")
        if self.pos not in POSITIONS:
            raise ValueError(f"GPTConfig.pos must be one of {POSITIONS}, got {self.pos!r}")
        if self.pos in ("rope", "rope-random") and self.head_size % 2:
            raise ValueError(f"GPTConfig.pos={self.pos!r} needs an even head size, got "
                             f"{self.head_size} (head_dim, or n_embd // n_head)")
        if self.pos in RANDOM_POSITIONS and self.pos_range is None:
            self.pos_range = self.block_size
        if self.pos_range is not None:
            r = self.pos_range
            if self.pos not in RANDOM_POSITIONS:
                raise ValueError(f"GPTConfig.pos_range applies to pos in {RANDOM_POSITIONS} "
                                 f"only, not pos={self.pos!r}")
            if isinstance(r, bool) or not isinstance(r, int) or r < self.block_size:
                raise ValueError(f"GPTConfig.pos_range must be an integer >= block_size "
                                 f"({self.block_size}), got {r!r}")
        for name in ("dropout", "attn_dropout", "resid_dropout", "embd_dropout"):
            value = getattr(self, name)
            if value is None and name != "dropout":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"GPTConfig.{name} must be a number in [0, 1), got {value!r}")
        for name in ("mlp", "bias", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"GPTConfig.{name} must be a bool, got {getattr(self, name)!r}")
        if not self.rope_base > 1:
            raise ValueError(f"GPTConfig.rope_base must be > 1, got {self.rope_base!r}")

    @property
    def head_size(self) -> int:
        """The attention head size D: ``head_dim``, or ``n_embd // n_head`` when unset."""
        return self.n_embd // self.n_head if self.head_dim is None else self.head_dim

    def drop(self, which: str) -> float:
        """Dropout rate for ``which`` ("attn", "resid" or "embd"); ``dropout`` when unset."""
        value = getattr(self, f"{which}_dropout")
        return float(self.dropout if value is None else value)


# ---------------------------------------------------------------------------------------------
# Presets. vocab_size / block_size default to Othello's (61 / 59); the trainer overrides them
# from the task (set complement: vocab v + 1, block v - 1).

PRESETS: dict[str, dict] = {
    # OthelloGPT (Li et al. 2023): 8 layers, 8 heads, width 512, MLP 2048 (4x), GELU, pre-LN,
    # learned absolute positions, dropout 0.1, context 59; about 25.3M parameters.
    "othello-gpt": dict(
        vocab_size=61,
        block_size=59,
        n_layer=8,
        n_head=8,
        n_embd=512,
        mlp=True,
        mlp_ratio=4,
        norm="pre",
        pos="learned",
        dropout=0.1,
    ),
    # OthelloGPT shrunk to run in seconds on a CPU (tests, smoke runs); about 0.11M parameters.
    "tiny": dict(
        vocab_size=61,
        block_size=59,
        n_layer=2,
        n_head=4,
        n_embd=64,
        mlp=True,
        mlp_ratio=4,
        norm="pre",
        pos="learned",
        dropout=0.1,
    ),
    # The paper's minimal model: one layer, one head, attention only, no LayerNorm, no positions,
    # no biases, so logits(t) = B[t_s] + sum_i a(t_s, t_i) D[t_i] exactly (B = E U).
    # Default vocab/block are set complement with v = 16 (vocab 17 incl. PAD, block 15).
    "setcomp-1l": dict(
        vocab_size=17,
        block_size=15,
        n_layer=1,
        n_head=1,
        n_embd=64,
        mlp=False,
        norm="none",
        pos="none",
        dropout=0.0,
        bias=False,
    ),
}


def preset(name: str, **overrides) -> GPTConfig:
    """Build the GPTConfig of preset ``name`` with some fields replaced.

    >>> preset("setcomp-1l", vocab_size=33, block_size=31).n_layer
    1

    Raises ValueError for an unknown preset or field, or an invalid value.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose from {sorted(PRESETS)}")
    known = {f.name for f in fields(GPTConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown GPTConfig field(s) {unknown}; known: {sorted(known)}")
    return GPTConfig(**{**PRESETS[name], **overrides})


