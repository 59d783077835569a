"""A GPT-1 style decoder-only transformer, nanoGPT-flat, every knob of the research a switch.

Read top to bottom: CausalSelfAttention, MLP, Block, GPT; their GPTConfig and the presets
are in :mod:`agents.config` (torch-free, so the command line reads them without torch).
Shapes: B = batch, T = sequence length, C = n_embd, H = n_head, D = head size (``head_dim``,
by default C // H), V = vocab_size.
``model(tokens, return_attn=True)`` also returns every layer's attention probabilities
(B, H, T, T) from the same forward pass, for evaluation (attention dispersion);
``return_resid=True`` the residual stream (B, T, C) after the embeddings and after each
block, for linear probes of what the model represents. ``model(new_tokens, cache=cache)``
decodes incrementally: a :class:`KVCache` holds the keys and values of the positions read
so far, so a game costs one position of forward work per move instead of its whole history.

Switches (all in GPTConfig, :mod:`agents.config`):

* ``norm``: ``"pre"`` (GPT-2: ``x = x + f(LN(x))``, plus a final LayerNorm before the
  head), ``"post"`` (GPT-1: ``x = LN(x + f(x))`` after every residual add, no final
  LayerNorm because the last block's output is already normalised) or ``"none"``
  (``x = x + f(x)``, no LayerNorm anywhere).
* ``pos``: ``"learned"`` absolute position embeddings (GPT-1/2, OthelloGPT), ``"none"``
  (the model sees a set, not a sequence, up to the causal mask), ``"rope"`` (rotary
  embeddings applied to queries and keys in every layer, a relative scheme), ``"alibi"``
  (Press et al. 2022: no embedding; head h adds ``-m_h (i - j)`` to the score of query
  position i for key j, :func:`alibi_slopes`), or ``"learned-random"`` / ``"rope-random"``
  (Ruoss et al. 2023): learned or rotary positions whose training positions are a sorted
  random sample from ``0..pos_range-1`` per sequence, so every position up to
  ``pos_range`` is trained. The model does not draw them: the caller passes ``pos``
  (B, T) (the trainer takes it from the task's seeded stream, ``Batch.pos``); without
  ``pos`` (evaluation, play, the KV cache) every scheme reads positions ``0..T-1``.
* ``mlp``: False gives attention-only blocks (the paper's minimal model).
* ``dropout`` and the optional ``attn_dropout`` / ``resid_dropout`` / ``embd_dropout``.
* ``tie_weights``: the paper's minimal model has a separate embedding E and
  unembedding U (B = E U), so weights are untied by default.
"""

from __future__ import annotations

import math

import numpy as np
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
# ALiBi (pos="alibi")


def alibi_slopes(n_head: int) -> torch.Tensor:
    """ALiBi's head slopes m_h (H,) float32 (Press et al. 2022, their code's ``get_slopes``).

    For H a power of two the geometric sequence ``2^(-8 (h + 1) / H)``, h = 0..H-1; otherwise
    those of the largest power of two p < H, then every other slope of 2p, until H slopes.
    """
    def powers(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]

    p = 2 ** int(math.floor(math.log2(n_head)))
    return torch.tensor(powers(p) + powers(2 * p)[0::2][: n_head - p], dtype=torch.float32)


# ---------------------------------------------------------------------------------------------
# The model


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig, layer: int = 0):
        super().__init__()
        self.layer = layer  # which keys and values of a KVCache are this layer's
        self.n_head = cfg.n_head
        self.head_size = cfg.head_size  # D; the value dimension is H * D
        HD = cfg.n_head * cfg.head_size
        self.c_attn = nn.Linear(cfg.n_embd, 3 * HD, bias=cfg.bias)  # q, k, v at once
        self.c_proj = nn.Linear(HD, cfg.n_embd, bias=cfg.bias)
        self.attn_dropout = cfg.drop("attn")
        self.resid_dropout = nn.Dropout(cfg.drop("resid"))

    def forward(self, x: torch.Tensor, rope: tuple | None = None, return_attn: bool = False,
                cache: KVCache | None = None, alibi: tuple | None = None):
        """(B, T, C) -> (B, T, C); with ``return_attn`` also the attention probabilities.

        The default path is the fused ``scaled_dot_product_attention``, which never forms
        the (T, T) matrix. ``return_attn=True`` computes the same attention explicitly and
        returns ``(y, att)``, att (B, H, T, T) float32, row t = softmax over keys 0..t
        (zero above the diagonal), before attention dropout. With a ``cache`` the T
        positions are new ones: their keys and values join the cached ones, and the
        queries attend over all of a row's positions up to their own (L keys, att
        (B, H, T, L)). ``alibi`` = (slopes (H,), query positions (T,) or (B, T)) adds ALiBi's
        bias; the keys' positions are the queries' own, or 0..L-1 with a cache.
        """
        B, T, C = x.shape
        H, D = self.n_head, self.head_size
        q, k, v = self.c_attn(x).split(H * D, dim=2)  # (B, T, H D) each
        q = q.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        v = v.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        visible = None  # which keys each query sees: None = all of them
        if cache is not None:
            k, v, visible = cache.update(self.layer, k, v)  # (B, H, L, D) each, (B, 1, T, L)
        elif return_attn or alibi is not None:
            visible = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()  # (T, T)
        mask = visible  # bool; with ALiBi a float bias, -inf where a key is not visible
        if alibi is not None:  # query position i, key position j: -m_h (i - j)
            slopes, qpos = alibi  # (H,), (T,) or (B, T)
            kpos = torch.arange(k.size(-2), device=x.device) if cache is not None else qpos
            dist = (qpos[..., :, None] - kpos[..., None, :]).unsqueeze(-3)  # (1|B, 1, T, L)
            bias = -slopes[:, None, None] * dist  # (H, T, L) or (B, H, T, L), float32
            mask = bias if visible is None else bias.masked_fill(~visible, float("-inf"))
        dropout_p = self.attn_dropout if self.training else 0.0
        att = None
        if return_attn:
            scores = (q @ k.transpose(-2, -1)).float() * (1.0 / math.sqrt(k.size(-1)))  # (B, H, T, L)
            if alibi is not None:
                scores = scores + mask
            elif visible is not None:
                scores = scores.masked_fill(~visible, float("-inf"))
            att = scores.softmax(dim=-1)  # (B, H, T, L)
            y = F.dropout(att, dropout_p, training=self.training).type_as(v) @ v  # (B, H, T, D)
        else:
            if alibi is not None:
                mask = mask.to(q.dtype)  # SDPA adds a float mask of the queries' dtype
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout_p,
                is_causal=cache is None and mask is None,
            )  # (B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(B, T, H * D)  # (B, T, H D): heads side by side
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

    def __init__(self, cfg: GPTConfig, layer: int = 0):
        super().__init__()
        self.norm = cfg.norm
        self.attn = CausalSelfAttention(cfg, layer)
        self.mlp = MLP(cfg) if cfg.mlp else None

        # ln_1 / ln_2 belong to the attention / MLP sublayer: before it (pre), after its add (post)
        def norm():
            return nn.LayerNorm(cfg.n_embd, bias=cfg.bias) if cfg.norm != "none" else nn.Identity()

        self.ln_1 = norm()
        self.ln_2 = norm() if cfg.mlp else None

    def forward(self, x: torch.Tensor, rope: tuple | None = None, return_attn: bool = False,
                cache: KVCache | None = None, alibi: tuple | None = None):
        """(B, T, C) -> (B, T, C); with ``return_attn`` also the attention (B, H, T, T)."""
        if self.norm == "post":  # GPT-1: LayerNorm after each residual add
            a = self.attn(x, rope, return_attn, cache, alibi)
            y, att = a if return_attn else (a, None)
            x = self.ln_1(x + y)
            if self.mlp is not None:
                x = self.ln_2(x + self.mlp(x))
        else:  # "pre" (GPT-2), or "none" where ln_1/ln_2 are the identity
            a = self.attn(self.ln_1(x), rope, return_attn, cache, alibi)
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

    ``pos`` (B, T) long (the randomized schemes' training positions, sorted, each in
    ``0..pos_range-1``; any scheme accepts it) replaces positions 0..T-1; the caller keeps
    them in range (an embedding lookup out of range fails). Not with a cache.

    ``cache=KVCache(model, n)`` (for play) makes ``tokens`` (B, T) new positions that
    continue rows ``rows`` of the cache (default all n; ``n_new`` real tokens per row,
    the rest padding): logits (B, T, V) of the new positions only, each at its row's own
    position; see :class:`KVCache`.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        if not isinstance(cfg, GPTConfig):
            raise ValueError(f"GPT needs a GPTConfig, got {type(cfg).__name__}")
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)  # E: token embedding
        # learned positions: one row per position the model can read (learned-random: drawn)
        n_pos = {"learned": cfg.block_size, "learned-random": cfg.pos_range}.get(cfg.pos)
        self.wpe = nn.Embedding(n_pos, cfg.n_embd) if n_pos else None
        # ALiBi's fixed slopes (H,): a buffer outside the state dict (nothing to learn or save)
        self.register_buffer("alibi_slopes", alibi_slopes(cfg.n_head) if cfg.pos == "alibi"
                             else None, persistent=False)
        self.drop = nn.Dropout(cfg.drop("embd"))
        self.blocks = nn.ModuleList([Block(cfg, layer) for layer in range(cfg.n_layer)])
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
                return_attn: bool = False, return_resid: bool = False,
                cache: KVCache | None = None, rows=None, n_new=None,
                pos: torch.Tensor | None = None):
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape (B, T), got {tuple(tokens.shape)}")
        T = tokens.shape[1]
        cfg = self.config
        if pos is not None and (cache is not None or tuple(pos.shape) != tuple(tokens.shape)):
            raise ValueError(f"pos must have the tokens' shape {tuple(tokens.shape)} and no cache"
                             f", got {tuple(pos.shape)}" + (" with a cache" if cache else ""))
        if cache is not None:
            pos = cache.begin(tokens, rows, n_new)  # (B, T): each new token's own position
        elif rows is not None or n_new is not None:
            raise ValueError("rows and n_new need a cache")
        elif cfg.pos in ("learned", "learned-random") and T > cfg.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {cfg.block_size}")
        elif pos is None:
            pos = torch.arange(T, device=tokens.device)  # (T,)
        x = self.wte(tokens)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(pos)  # + (T, C), or (B, T, C) with a cache or given positions
        x = self.drop(x)
        rope = None
        if cfg.pos in ("rope", "rope-random"):  # the table rows of each token's position
            n = max(T, cfg.pos_range or cfg.block_size)  # rows: every position pos may hold
            cos, sin = rope_cos_sin(n, cfg.head_size, cfg.rope_base,
                                    tokens.device)  # (n, D/2) each
            rope = ((cos[pos], sin[pos]) if pos.dim() == 1  # (T, D/2) each
                    else (cos[pos][:, None], sin[pos][:, None]))  # (B, 1, T, D/2) each
        alibi = (self.alibi_slopes, pos) if cfg.pos == "alibi" else None  # (H,), (T,) | (B, T)
        attn = []  # n_layer x (B, H, T, T) when return_attn
        resid = [x] if return_resid else None  # n_layer + 1 x (B, T, C) when return_resid
        for block in self.blocks:
            if return_attn:
                x, att = block(x, rope, return_attn=True, cache=cache, alibi=alibi)
                attn.append(att)
            else:
                x = block(x, rope, cache=cache, alibi=alibi)  # (B, T, C)
            if return_resid:
                resid.append(x)
        if cache is not None:
            cache.end()  # the rows now hold their new positions
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


# ---------------------------------------------------------------------------------------------
# Key/value cache: incremental decoding for play


class KVCache:
    """The keys and values of the positions a GPT has read, per row, for incremental decoding.

    ``KVCache(model, n)``: n rows (games), each layer's keys and values ``k[l]``, ``v[l]``
    (n, H, Tmax, D) with Tmax = ``block_size``, and ``lengths`` (n,) int64 (NumPy), the
    positions each row holds. ``model(tokens, cache=cache, rows=rows, n_new=n_new)``
    appends row i of ``tokens`` (B, T) after the positions of cache row ``rows[i]``
    (distinct rows; default all n) and returns the logits (B, T, V) of the new positions:
    those of the full forward pass over the whole sequence, up to float rounding. Rows
    may be at different lengths; ``n_new[i]`` (1..T, default T) of a row's T tokens are
    real, the rest right padding (never stored; its logits mean nothing).
    :meth:`reset` empties rows (a new game) without touching the others.

    A row holds at most ``block_size`` positions (the cap): appending past it is a
    ValueError; a caller with longer histories reads their last ``block_size`` tokens
    without the cache, as the full forward pass does.

    Why the earlier keys and values stay valid: attention is causal and every other
    sublayer (embeddings, LayerNorm before or after the residual add or none, MLP) acts
    position by position, so layer l's input at position t, and with it the key and value
    there, depends on tokens 0..t only, never on later ones. Learned and rotary positions
    are each token's own (``lengths[row] + j``), as are ALiBi's (query position against key
    positions 0..L-1) and the randomized schemes' (their evaluation positions 0..T-1);
    "none" has none. Dropout acts as in the
    full pass (off in eval mode, where the equality holds). The index arithmetic is
    NumPy: a decoding step is small, and its cost is the number of operations.
    """

    def __init__(self, model: GPT, n: int):
        cfg = model.config
        p = next(model.parameters())
        self.block_size = cfg.block_size
        shape = (n, cfg.n_head, cfg.block_size, cfg.head_size)  # (n, H, Tmax, D)
        self.k = [torch.zeros(shape, dtype=p.dtype, device=p.device) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros_like(k) for k in self.k]
        self.lengths = np.zeros(n, dtype=np.int64)  # (n,) positions held per row
        self._step = None  # the forward pass in progress: what begin() found for update()

    def __len__(self) -> int:
        return self.lengths.shape[0]

    def reset(self, rows=None):
        """Empty ``rows`` (default all); their old keys and values are never read again."""
        self.lengths[slice(None) if rows is None else np.asarray(rows, dtype=np.int64)] = 0

    def copy_rows(self, src, dst):
        """Row ``dst[i]`` becomes a copy of row ``src[i]`` (one prefix continued two ways)."""
        src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
        L = int(self.lengths[src].max(initial=0))  # positions worth copying
        dev = self.k[0].device
        i, j = torch.from_numpy(src).to(dev), torch.from_numpy(dst).to(dev)
        for t in self.k + self.v:
            t[j, :, :L] = t[i, :, :L]
        self.lengths[dst] = self.lengths[src]

    def grow(self, n: int):
        """Append ``n`` empty rows."""
        self.k = [torch.cat([t, t.new_zeros((n, *t.shape[1:]))]) for t in self.k]
        self.v = [torch.cat([t, t.new_zeros((n, *t.shape[1:]))]) for t in self.v]
        self.lengths = np.concatenate([self.lengths, np.zeros(n, dtype=np.int64)])

    def begin(self, tokens: torch.Tensor, rows=None, n_new=None) -> torch.Tensor:
        """GPT.forward's first step: check the new tokens (B, T), return their positions (B, T)."""
        B, T = tokens.shape
        rows = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=np.int64).ravel()
        n_new = np.full(B, T) if n_new is None else np.asarray(n_new, dtype=np.int64).ravel()
        if B == 0 or rows.shape != (B,) or n_new.shape != (B,):
            raise ValueError(f"need B >= 1 token rows, one cache row and one n_new each: tokens "
                             f"{tuple(tokens.shape)}, rows {rows.shape}, n_new {n_new.shape}")
        if rows.min() < 0 or rows.max() >= len(self) or (B > 1 and len(set(rows.tolist())) != B):
            raise ValueError(f"rows must be distinct rows of the cache (0..{len(self) - 1})")
        if n_new.min() < 1 or n_new.max() > T:
            raise ValueError(f"n_new must lie in 1..{T}, got {n_new.tolist()}")
        start = self.lengths[rows]  # (B,) positions held before this step
        end = start + n_new  # (B,) and after
        L = int(end.max())  # keys read: the longest row's
        if L > self.block_size:
            raise ValueError(f"a cache row would hold {L} positions; the cap is block_size "
                             f"{self.block_size}")
        pos = start[:, None] + np.arange(T)  # (B, T)
        dev = self.k[0].device

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).to(dev)

        if B == 1:  # one game (ModelPolicy): slices of its row, no index tensors
            r, s, e = int(rows[0]), int(start[0]), int(end[0])
            # one new token sees every key; several see the keys up to their own position
            mask = None if T == 1 else t(np.arange(L) <= pos[0][:, None])[None, None]  # (1, 1, T, L)
            self._step = dict(rows=rows, end=end, one=(r, s, e), L=L, mask=mask)
        else:
            real = np.arange(T) < n_new[:, None]  # (B, T): not padding
            visible = np.arange(L) <= pos[:, :, None]  # (B, T, L): key j visible from each query
            self._step = dict(rows=rows, end=end, one=None, gather=t(rows), L=L,
                              real=None if real.all() else t(real),
                              mask=t(visible[:, None]),  # (B, 1, T, L)
                              write=(t(np.broadcast_to(rows[:, None], (B, T))[real]), t(pos[real])))
        return t(np.minimum(pos, self.block_size - 1))  # padding may run past the cap

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Store layer ``layer``'s new keys and values (B, H, T, D); return the rows' keys
        and values so far (B, H, L, D) and which keys each query sees (B, 1, T, L; None:
        all, for one new token of one row)."""
        s, L = self._step, self._step["L"]
        K, V = self.k[layer], self.v[layer]
        if s["one"] is not None:  # one row: write and read slices of it
            r, b, e = s["one"]
            K[r, :, b:e], V[r, :, b:e] = k[0, :, : e - b], v[0, :, : e - b]
            return K[r : r + 1, :, :L].to(k.dtype), V[r : r + 1, :, :L].to(v.dtype), s["mask"]
        for t, new in ((K, k), (V, v)):
            new = new.transpose(1, 2)  # (B, T, H, D)
            new = new.reshape(-1, *new.shape[2:]) if s["real"] is None else new[s["real"]]  # (m, H, D)
            t[s["write"][0], :, s["write"][1]] = new.to(t.dtype)
        k_all = K[:, :, :L].index_select(0, s["gather"])  # (B, H, L, D)
        v_all = V[:, :, :L].index_select(0, s["gather"])  # (B, H, L, D)
        return k_all.to(k.dtype), v_all.to(v.dtype), s["mask"]

    def end(self):
        """GPT.forward's last step: the rows now hold their new positions."""
        self.lengths[self._step["rows"]] = self._step["end"]
        self._step = None


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
