"""A GPT-1 style decoder-only transformer, nanoGPT-flat, every knob of the research a switch.

Read top to bottom: CausalSelfAttention, MLP, Block, GPT; their GPTConfig and the presets
are in :mod:`agents.config` (torch-free, so the command line reads them without torch).
Shapes: B = batch, T = sequence length, C = n_embd, H = n_head, D = C // H, V = vocab_size.
``model(tokens, return_attn=True)`` also returns every layer's attention probabilities
(B, H, T, T) from the same forward pass, for evaluation (attention dispersion);
``return_resid=True`` the residual stream (B, T, C) after the embeddings and after each
block, for linear probes of what the model represents.

Switches (all in GPTConfig, :mod:`agents.config`):

* ``norm``: ``"pre"`` (GPT-2: ``x = x + f(LN(x))``, plus a final LayerNorm before the
  head), ``"post"`` (GPT-1: ``x = LN(x + f(x))`` after every residual add, no final
  LayerNorm because the last block's output is already normalised) or ``"none"``
  (``x = x + f(x)``, no LayerNorm anywhere).
* ``pos``: ``"learned"`` absolute position embeddings (GPT-1/2, OthelloGPT), ``"none"``
  (the model sees a set, not a sequence, up to the causal mask) or ``"rope"`` (rotary
  embeddings applied to queries and keys in every layer, a relative scheme).
* ``mlp``: False gives attention-only blocks (the paper's minimal model).
* ``dropout`` and the optional ``attn_dropout`` / ``resid_dropout`` / ``embd_dropout``.
* ``tie_weights``: the paper's minimal model has a separate embedding E and
  unembedding U (B = E U), so weights are untied by default.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn import functional as F

from agents.config import GPTConfig
from agents.losses import legal_loss, next_token_loss

# ---------------------------------------------------------------------------------------------
# Rotary position embeddings (pos="rope")


def rope_cos_sin(T: int, head_dim: int, base: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin tables of shape (T, head_dim // 2) for rotary embeddings."""
    inv_freq = base ** (
        -torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim
    )
    angles = torch.outer(torch.arange(T, device=device, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs of channels of x (B, H, T, D) by position-dependent angles."""
    x1, x2 = x.float()[..., 0::2], x.float()[..., 1::2]  # (B, H, T, D/2) each
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, H, T, D/2, 2)
    return out.flatten(-2).type_as(x)


# ---------------------------------------------------------------------------------------------
# The model


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)  # q, k, v at once
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.attn_dropout = cfg.drop("attn")
        self.resid_dropout = nn.Dropout(cfg.drop("resid"))

    def forward(self, x: torch.Tensor, rope: tuple | None = None, return_attn: bool = False):
        """(B, T, C) -> (B, T, C); with ``return_attn`` also the attention probabilities.

        The default path is the fused ``scaled_dot_product_attention``, which never forms
        the (T, T) matrix. ``return_attn=True`` computes the same attention explicitly and
        returns ``(y, att)``, att (B, H, T, T) float32, row t = softmax over keys 0..t
        (zero above the diagonal), before attention dropout.
        """
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # (B, T, C) each
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, D)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, D)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        dropout_p = self.attn_dropout if self.training else 0.0
        att = None
        if return_attn:
            scores = (q @ k.transpose(-2, -1)).float() * (1.0 / math.sqrt(k.size(-1)))  # (B, H, T, T)
            causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            att = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)  # (B, H, T, T)
            y = F.dropout(att, dropout_p, training=self.training).type_as(v) @ v  # (B, H, T, D)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, dropout_p=dropout_p, is_causal=True
            )  # (B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side
        y = self.resid_dropout(self.c_proj(y))
        return (y, att) if return_attn else y


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, cfg.mlp_ratio * cfg.n_embd, bias=cfg.bias)
        self.gelu = nn.GELU()  # exact GELU, as GPT-1 and OthelloGPT
        self.c_proj = nn.Linear(cfg.mlp_ratio * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.drop("resid"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C)


class Block(nn.Module):
    """One transformer block; where its LayerNorms sit is ``cfg.norm``."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.norm = cfg.norm
        self.attn = CausalSelfAttention(cfg)
        self.mlp = MLP(cfg) if cfg.mlp else None

        # ln_1 / ln_2 belong to the attention / MLP sublayer: before it (pre), after its add (post)
        def norm():
            return nn.LayerNorm(cfg.n_embd, bias=cfg.bias) if cfg.norm != "none" else nn.Identity()

        self.ln_1 = norm()
        self.ln_2 = norm() if cfg.mlp else None

    def forward(self, x: torch.Tensor, rope: tuple | None = None, return_attn: bool = False):
        """(B, T, C) -> (B, T, C); with ``return_attn`` also the attention (B, H, T, T)."""
        if self.norm == "post":  # GPT-1: LayerNorm after each residual add
            a = self.attn(x, rope, return_attn)
            y, att = a if return_attn else (a, None)
            x = self.ln_1(x + y)
            if self.mlp is not None:
                x = self.ln_2(x + self.mlp(x))
        else:  # "pre" (GPT-2), or "none" where ln_1/ln_2 are the identity
            a = self.attn(self.ln_1(x), rope, return_attn)
            y, att = a if return_attn else (a, None)
            x = x + y
            if self.mlp is not None:
                x = x + self.mlp(self.ln_2(x))
        return (x, att) if return_attn else x  # (B, T, C)


class GPT(nn.Module):
    """Decoder-only transformer: tokens (B, T) -> next-token logits (B, T, V).

    ``model(tokens)`` returns logits. ``model(tokens, targets)`` returns ``(logits, loss)``:
    a LongTensor (B, T) of next tokens (-1 = ignore) gives the ordinary next-token
    cross-entropy, a BoolTensor (B, T, V) of legal sets gives the ``legal`` loss
    (see :mod:`agents.losses`). Position t's logits depend only on tokens[:, :t+1].

    ``return_attn=True`` (for evaluation: the attention of the same forward pass as the
    logits) appends ``attn`` to the result, ``(logits, attn)`` or ``(logits, loss, attn)``:
    a list of n_layer float32 tensors (B, H, T, T), the attention probabilities of each
    layer and head (query t over keys 0..t), computed explicitly instead of by the fused
    kernel; the logits equal the default path's up to float rounding.

    ``return_resid=True`` (for probes) appends ``resid`` after that: a list of n_layer + 1
    tensors (B, T, C), the residual stream after the embeddings (index 0, after embedding
    dropout) and after each block (index l = after block l; the last is the input of
    ``ln_f``). Taking them costs nothing: the default path computes the same tensors.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        if not isinstance(cfg, GPTConfig):
            raise ValueError(f"GPT needs a GPTConfig, got {type(cfg).__name__}")
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)  # E: token embedding
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd) if cfg.pos == "learned" else None
        self.drop = nn.Dropout(cfg.drop("embd"))
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        # pre-norm needs a final LayerNorm (the residual stream is unnormalised); post-norm's
        # last block already ends in one; "none" has none.
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias) if cfg.norm == "pre" else nn.Identity()
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)  # U: unembedding
        if cfg.tie_weights:
            self.lm_head.weight = self.wte.weight

        # nanoGPT init: N(0, 0.02) for Linear and Embedding weights, zero biases, LayerNorm (1, 0);
        # residual output projections scaled by 1/sqrt(number of residual branches) so the
        # residual stream's variance at init does not grow with depth.
        self.apply(self._init_weights)
        n_branches = cfg.n_layer * (2 if cfg.mlp else 1)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(n_branches))

    @staticmethod
    def _init_weights(module: nn.Module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Number of distinct parameters (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor | None = None,
                return_attn: bool = False, return_resid: bool = False):
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape (B, T), got {tuple(tokens.shape)}")
        T = tokens.shape[1]
        cfg = self.config
        if cfg.pos == "learned" and T > cfg.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {cfg.block_size}")
        x = self.wte(tokens)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(T, device=tokens.device))  # + (T, C)
        x = self.drop(x)
        rope = None
        if cfg.pos == "rope":
            rope = rope_cos_sin(T, cfg.n_embd // cfg.n_head, cfg.rope_base, tokens.device)
        attn = []  # n_layer x (B, H, T, T) when return_attn
        resid = [x] if return_resid else None  # n_layer + 1 x (B, T, C) when return_resid
        for block in self.blocks:
            if return_attn:
                x, att = block(x, rope, return_attn=True)
                attn.append(att)
            else:
                x = block(x, rope)  # (B, T, C)
            if return_resid:
                resid.append(x)
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
        out = (logits,)
        if targets is not None:
            loss_fn = legal_loss if targets.dtype == torch.bool else next_token_loss
            out += (loss_fn(logits, targets),)
        if return_attn:
            out += (attn,)
        if return_resid:
            out += (resid,)
        return out[0] if len(out) == 1 else out

def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: weight decay on the weight matrices of Linear layers only.

    Decayed: attention and MLP projections and the output head U. Not decayed: biases,
    LayerNorm parameters and embeddings (token and position). This is minGPT's rule, which
    OthelloGPT trained with ("weight decay on matrices only"); nanoGPT also decays
    embeddings. A tied head/embedding matrix is decayed (it is the head's weight).
    Works on any module, wrapped (torch.compile, DDP) or not.
    """
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    decay_ids = {
        id(m.weight) for m in model.modules() if isinstance(m, nn.Linear) and m.weight is not None
    }
    decay, no_decay = [], []
    for p in model.parameters():  # parameters() yields a shared (tied) tensor once
        if p.requires_grad:
            (decay if id(p) in decay_ids else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": float(weight_decay)},
        {"params": no_decay, "weight_decay": 0.0},
    ]
