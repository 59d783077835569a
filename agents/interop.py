"""Interoperability: lgagent models to and from TransformerLens, Hugging Face transformers
(GPT2LMHeadModel, see the section near the end) and safetensors weights.

TransformerLens 4 removed ``HookedTransformer``; its replacement for a model built from a
config is the ``TransformerBridge`` around a TL-native model
(``TransformerBridge.boot_native(cfg)``), with the same hooks (``run_with_cache``,
``blocks.{l}.attn.hook_pattern``, ``blocks.{l}.hook_resid_post``, ...). That is what
:func:`to_hooked_transformer` returns and what :func:`from_hooked_transformer` reads (their
names keep ``HookedTransformer``, the one TransformerLens users know). Both need the ``interop``
extra (``pip install "lgagent[interop]"``); transformer_lens and safetensors are imported inside
the functions that use them, never at import time.

Correspondence (lgagent ``GPTConfig`` -> TransformerBridgeConfig, the native model's
state-dict keys; checked numerically in tests/agents/test_interop.py):

* ``norm="pre"`` -> ``normalization_type="LN"`` (``ln_1``/``ln_2``/``ln_f`` ->
  ``blocks.{l}.ln1``/``ln2``/``ln_final``, eps 1e-5 in both); ``"none"`` -> ``None``.
  ``"post"`` (GPT-1's LayerNorm after each residual add) has no equivalent: refused.
* ``pos="learned"`` -> ``"standard"`` (``wpe`` -> ``pos_embed``); ``"none"`` -> ``"standard"``
  with an all-zero ``pos_embed`` (read back as ``"none"``); ``"rope"`` -> ``"rotary"``: the
  native model rotates adjacent channel pairs (2i, 2i+1) by position x base^(-2i/d_head),
  as lgagent does (``rotary_dim = d_head``, ``rotary_base = rope_base``, which
  TransformerLens stores as an integer: a non-integer base is refused). ``"learned-random"``
  and ``"rope-random"`` export as their evaluation-time model (positions 0..T-1: the first
  ``block_size`` rows of ``wpe``, or rotary), and read back as themselves from an lgagent
  export when the table fits (``pos_range == block_size``), else as ``"learned"``.
  ``"alibi"`` is refused: TransformerLens 4's native model has no ALiBi.
* ``mlp=False`` -> ``attn_only=True``; ``mlp_ratio`` -> ``d_mlp = mlp_ratio * n_embd``;
  exact GELU -> ``act_fn="gelu"`` (``"gelu_new"``, the tanh approximation, is refused).
* attention ``c_attn`` (3HD, C) -> ``attn.q``/``k``/``v`` (HD, C) each, ``c_proj`` (C, HD) ->
  ``attn.o``, with ``d_head = D`` (``head_dim``, by default C // H; a ``head_dim`` with
  H D != C exports as such a ``d_head`` and reads back as ``head_dim``);
  ``mlp.c_fc``/``c_proj`` -> ``mlp.in``/``out``; ``lm_head`` -> ``unembed`` (its bias zero);
  scores scaled by 1/sqrt(d_head) in both. ``bias=False`` -> zero biases (read back as
  ``bias=False`` when every bias is zero); ``tie_weights`` -> equal ``embed``/``unembed``.

The file formats (:data:`TL_FORMAT`, :data:`ST_FORMAT`) are described in
:func:`transformer_lens_payload` and :func:`safetensors_payload`; :func:`read_interop_file`
reads either (and a plain ``{"config", "state_dict"}`` torch file, in bridge or in
HookedTransformer key format) back into an lgagent model and its task.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import torch

from agents.checkpoint import first_line
from agents.config import GPTConfig
from agents.model import GPT

INSTALL = 'pip install "lgagent[interop]"'
TL_FORMAT = "lgagent-transformer-lens"  # torch.save'd dict, see transformer_lens_payload
ST_FORMAT = "lgagent-safetensors"  # safetensors metadata "format", see safetensors_payload
VERSION = 1
TASKS = ("othello", "setcomp")
EPS = 1e-5  # nn.LayerNorm's default, which lgagent's LayerNorms use
ATOL = 1e-4  # a converted model's logits agree this closely with the source's (max_logit_difference)


class MissingExtra(ValueError):
    """transformer_lens or safetensors is not installed (message: how to install it)."""


def _require(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise MissingExtra(f"{module.split('.')[0]} is not installed; {INSTALL}") from None


def _tl_bridge():
    """(TransformerBridgeConfig, boot_native, convert_tl_checkpoint), or MissingExtra."""
    _require("transformer_lens")
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge.sources.native import boot
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    return TransformerBridgeConfig, boot, convert_tl_checkpoint


# ---------------------------------------------------------------------------------------------
# lgagent -> TransformerLens


def tl_config(cfg: GPTConfig, device="cpu") -> dict:
    """The TransformerBridgeConfig fields (plain values) of a TL-native model equal to ``cfg``.

    ValueError, one line, for a config TransformerLens cannot represent (Post-Norm, a
    non-integer rotary base).
    """
    if cfg.norm == "post":
        raise ValueError("a Post-Norm model (norm='post', LayerNorm after each residual add as in "
                         "GPT-1) has no HookedTransformer/TransformerBridge equivalent")
    if cfg.pos == "alibi":
        raise ValueError("an ALiBi model (pos='alibi') has no TransformerBridge equivalent: "
                         "TransformerLens 4's native model has standard and rotary positions only")
    rotary = cfg.pos in ("rope", "rope-random")  # a randomized scheme exports as its eval model
    if rotary and cfg.rope_base != int(cfg.rope_base):
        raise ValueError(f"rope_base {cfg.rope_base!r} is not an integer; TransformerLens stores "
                         "rotary_base as an integer")
    d_head = cfg.head_size  # head_dim, or n_embd // n_head
    return {
        "d_model": cfg.n_embd, "d_head": d_head, "n_heads": cfg.n_head, "n_layers": cfg.n_layer,
        "n_ctx": cfg.block_size, "d_vocab": cfg.vocab_size, "d_vocab_out": cfg.vocab_size,
        "d_mlp": cfg.mlp_ratio * cfg.n_embd, "attn_only": not cfg.mlp, "act_fn": "gelu",
        "normalization_type": "LN" if cfg.norm == "pre" else None, "eps": EPS,
        "positional_embedding_type": "rotary" if rotary else "standard",
        "rotary_dim": d_head if rotary else None,
        "rotary_base": int(cfg.rope_base), "original_architecture": "lgagent",
        "architecture": "TransformerLensNative", "model_name": "lgagent",
        "device": str(device), "init_weights": False,
    }


def tl_state_dict(model: GPT) -> dict:
    """The state dict, in TransformerBridge (TL-native) keys, of a model equal to ``model``."""
    cfg = model.config
    if cfg.norm == "post" or cfg.pos == "alibi":
        tl_config(cfg)  # raises the one-line refusal
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    C, HD = cfg.n_embd, cfg.n_head * cfg.head_size  # width, attention (value) width

    def bias(key, n):
        return sd[key] if key in sd else torch.zeros(n, dtype=sd["wte.weight"].dtype,
                                                     device=sd["wte.weight"].device)

    out = {"embed.weight": sd["wte.weight"]}
    if cfg.pos in ("learned", "learned-random"):  # the rows of positions 0..block_size-1
        out["pos_embed.weight"] = sd["wpe.weight"][: cfg.block_size]
    elif cfg.pos == "none":
        out["pos_embed.weight"] = torch.zeros(cfg.block_size, C, dtype=sd["wte.weight"].dtype,
                                              device=sd["wte.weight"].device)
    for i in range(cfg.n_layer):
        p = f"blocks.{i}."  # the same block prefix on both sides
        lns = [("ln_1", "ln1")] + ([("ln_2", "ln2")] if cfg.mlp else [])
        if cfg.norm == "pre":
            for ours, theirs in lns:
                out[f"{p}{theirs}.weight"] = sd[f"{p}{ours}.weight"]
                out[f"{p}{theirs}.bias"] = bias(f"{p}{ours}.bias", C)
        w = sd[f"{p}attn.c_attn.weight"]  # (3 HD, C): q, k, v stacked
        b = bias(f"{p}attn.c_attn.bias", 3 * HD)
        for j, name in enumerate("qkv"):
            out[f"{p}attn.{name}.weight"] = w[j * HD:(j + 1) * HD]
            out[f"{p}attn.{name}.bias"] = b[j * HD:(j + 1) * HD]
        out[f"{p}attn.o.weight"] = sd[f"{p}attn.c_proj.weight"]
        out[f"{p}attn.o.bias"] = bias(f"{p}attn.c_proj.bias", C)
        if cfg.mlp:
            out[f"{p}mlp.in.weight"] = sd[f"{p}mlp.c_fc.weight"]
            out[f"{p}mlp.in.bias"] = bias(f"{p}mlp.c_fc.bias", cfg.mlp_ratio * C)
            out[f"{p}mlp.out.weight"] = sd[f"{p}mlp.c_proj.weight"]
            out[f"{p}mlp.out.bias"] = bias(f"{p}mlp.c_proj.bias", C)
    if cfg.norm == "pre":
        out["ln_final.weight"] = sd["ln_f.weight"]
        out["ln_final.bias"] = bias("ln_f.bias", C)
    out["unembed.weight"] = sd["lm_head.weight"]
    out["unembed.bias"] = torch.zeros(cfg.vocab_size, dtype=sd["lm_head.weight"].dtype,
                                      device=sd["lm_head.weight"].device)
    return {k: v.clone().contiguous() for k, v in out.items()}


def _model_and_meta(model_or_checkpoint, weights: str) -> tuple[GPT, dict]:
    """A GPT (eval mode) and the lgagent metadata exports carry, from a GPT, an EMA/BEMA, a
    checkpoint dict or a checkpoint path (RUN_DIR or file)."""
    import torch.nn as nn

    from agents import checkpoint
    from agents.averaging import BEMA, EMA, unwrap

    if isinstance(model_or_checkpoint, (str, os.PathLike, dict)):
        ckpt = (checkpoint.load(model_or_checkpoint)
                if not isinstance(model_or_checkpoint, dict) else checkpoint.check(model_or_checkpoint))
        model = checkpoint.model_from_checkpoint(ckpt, weights)
        task = checkpoint.task_of(ckpt)
        return model, meta_of(model.config, task=task, config=ckpt["config"], weights=weights,
                              step=ckpt["step"])
    m = model_or_checkpoint
    if isinstance(m, (EMA, BEMA)):
        m = m.module
    elif isinstance(m, nn.Module):
        m = unwrap(m)
    if not isinstance(m, GPT):
        raise ValueError("expected an lgagent GPT, an EMA/BEMA or a checkpoint path, got "
                         f"{type(model_or_checkpoint).__name__}")
    return m, meta_of(m.config)


def meta_of(cfg: GPTConfig, *, task: str | None = None, config: dict | None = None,
            weights: str = "raw", step: int = 0) -> dict:
    """The lgagent metadata an export carries: model config, task and token codec, the run
    config, which weights, the step."""
    vocab = None
    if task == "othello":
        vocab = {"vocab_size": cfg.vocab_size, "pad_id": 0, "block_size": 59,
                 "tokens": "0 = PAD; 1..60 = the non-centre squares (row*8+col, a1 = 0) in "
                           "increasing order (othello_env.tokens)"}
    elif task == "setcomp":
        vocab = {"vocab_size": cfg.vocab_size, "pad_id": cfg.vocab_size - 1,
                 "block_size": cfg.vocab_size - 2,
                 "tokens": f"0..{cfg.vocab_size - 2} are themselves; PAD = {cfg.vocab_size - 1}"}
    return {"model_config": dataclasses.asdict(cfg), "task": task, "vocab": vocab,
            "config": dict(config or {}), "weights": weights, "step": int(step)}


def to_hooked_transformer(model_or_checkpoint, weights: str = "raw", device="cpu"):
    """A TransformerLens ``TransformerBridge`` (TL >= 4's HookedTransformer) computing the same
    logits as an lgagent model, for TransformerLens's hooks, caches and patching tools.

    ``model_or_checkpoint``: a GPT (an EMA/BEMA: its averaged module), a checkpoint dict, or a
    RUN_DIR / checkpoint file (``weights`` picks raw, ema, bema or ``ema_<decay>``). The
    bridge is in eval mode on ``device``; ``bridge.cfg.lgagent`` holds the metadata
    (:func:`meta_of`) that lets :func:`from_hooked_transformer` give back the exact config.
    ValueError, one line, for a model TransformerLens cannot represent (Post-Norm); MissingExtra
    without transformer_lens.
    """
    model, meta = _model_and_meta(model_or_checkpoint, weights)
    cfg_dict = tl_config(model.config, device)  # Post-Norm refused before the slow import
    _, boot, _ = _tl_bridge()
    bridge = boot(dict(cfg_dict), device=device)
    bridge.load_state_dict({k: v.to(device) for k, v in tl_state_dict(model).items()})
    bridge.cfg.lgagent = meta
    return bridge.eval()


def transformer_lens_payload(model_or_checkpoint, weights: str = "raw") -> dict:
    """What ``lgagent export --to transformer-lens`` saves with ``torch.save``:

    ``{"format": "lgagent-transformer-lens", "version": 1, "config": {TransformerBridgeConfig
    fields}, "state_dict": {TL-native keys: tensors}, "lgagent": metadata}``. Loading it in
    TransformerLens needs no lgagent::

        d = torch.load(FILE, weights_only=True)
        bridge = TransformerBridge.boot_native(d["config"]); bridge.load_state_dict(d["state_dict"])

    Plain types and tensors only (``torch.load(weights_only=True)`` reads it).
    """
    model, meta = _model_and_meta(model_or_checkpoint, weights)
    cfg = tl_config(model.config)
    cfg.pop("device")
    return {"format": TL_FORMAT, "version": VERSION, "config": cfg,
            "state_dict": {k: v.cpu() for k, v in tl_state_dict(model).items()}, "lgagent": meta}


def safetensors_payload(model_or_checkpoint, weights: str = "raw") -> bytes:
    """The bytes ``lgagent export --to safetensors`` writes: the lgagent state dict
    (``model.state_dict()`` keys; a tied ``lm_head.weight`` is left out, as model hubs do)
    with string metadata ``format`` (:data:`ST_FORMAT`), ``version``, ``model_config``
    (JSON of GPTConfig), ``task``, ``vocab`` (JSON: vocab_size, pad_id, block_size, tokens),
    ``config`` (JSON of the run config), ``weights`` and ``step``. MissingExtra without
    safetensors.
    """
    st = _require("safetensors.torch")
    model, meta = _model_and_meta(model_or_checkpoint, weights)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_weights:
        sd.pop("lm_head.weight")
    md = {"format": ST_FORMAT, "version": str(VERSION), "weights": meta["weights"],
          "step": str(meta["step"]), "task": meta["task"] or "",
          **{k: json.dumps(meta[k]) for k in ("model_config", "vocab", "config")}}
    return st.save(sd, metadata=md)


# ---------------------------------------------------------------------------------------------
# TransformerLens -> lgagent

# TransformerBridgeConfig fields whose value here is the only one lgagent can represent
_MUST = {"gated_mlp": False, "parallel_attn_mlp": False, "final_rms": False,
         "use_qk_norm": False, "use_local_attn": False, "attention_dir": "causal",
         "scale_attn_by_inverse_layer_idx": False, "post_embedding_ln": False,
         "num_experts": None, "use_normalization_before_and_after": False,
         "rope_scaling": None, "use_NTK_by_parts_rope": False}


def _as_bridge_config(cfg):
    """A TransformerBridgeConfig from a config object or dict (unknown keys ignored)."""
    TBC, _, _ = _tl_bridge()
    if isinstance(cfg, TBC):
        return cfg
    if hasattr(cfg, "to_dict"):  # another TransformerLens config class
        cfg = cfg.to_dict()
    if not isinstance(cfg, dict):
        raise ValueError(f"expected a TransformerLens config or dict, got {type(cfg).__name__}")
    cfg = {k: v for k, v in cfg.items() if k not in ("dtype", "device")}
    try:
        return TBC.from_dict({**cfg, "device": "cpu"})
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"unusable TransformerLens config: {first_line(e)}") from None


def _check_representable(c) -> None:
    """ValueError, one line, naming the first TransformerBridgeConfig setting lgagent lacks."""
    def refuse(what):
        raise ValueError(f"cannot import: {what} has no lgagent equivalent")

    arch = getattr(c, "architecture", None)
    if arch not in (None, "TransformerLensNative"):
        refuse(f"architecture {arch!r} (only TL-native models: boot_native, boot_tl_legacy)")
    for k, want in _MUST.items():
        got = getattr(c, k, want)
        if got != want and not (want is None and not got):
            refuse(f"{k}={got!r}")
    if not c.attn_only and (c.act_fn or "").lower() != "gelu":
        refuse(f"act_fn={c.act_fn!r} (lgagent's MLP uses exact GELU, act_fn='gelu')")
    norm = c.normalization_type
    if norm not in (None, "LN", "LNPre"):
        refuse(f"normalization_type={norm!r}")
    if norm is not None and not math.isclose(c.eps, EPS, rel_tol=1e-9, abs_tol=0.0):
        refuse(f"LayerNorm eps={c.eps!r} (lgagent uses {EPS})")
    kv = getattr(c, "n_key_value_heads", None)
    if kv not in (None, c.n_heads):
        refuse(f"grouped-query attention (n_key_value_heads={kv})")
    if not c.use_attn_scale or (c.attn_scale > 0
                                and not math.isclose(c.attn_scale, math.sqrt(c.d_head))):
        refuse(f"attention scale {c.attn_scale!r} (lgagent divides scores by sqrt(d_head))")
    soft = [k for k in ("attn_scores_soft_cap", "output_logits_soft_cap")
            if 0 < float(getattr(c, k, -1)) < math.inf]
    if soft:
        refuse(f"{soft[0]}={getattr(c, soft[0])}")
    pe = (c.positional_embedding_type or "standard").lower()
    if pe not in ("standard", "rotary"):
        refuse(f"positional_embedding_type={c.positional_embedding_type!r}")
    if pe == "rotary" and c.rotary_dim not in (None, c.d_head):
        refuse(f"partial rotary (rotary_dim={c.rotary_dim}, d_head={c.d_head})")
    if c.d_vocab_out not in (-1, c.d_vocab):
        refuse(f"d_vocab_out={c.d_vocab_out} != d_vocab={c.d_vocab}")
    if not c.attn_only and c.d_mlp % c.d_model:
        refuse(f"d_mlp={c.d_mlp} (not a multiple of d_model={c.d_model})")


def _bridge_state(sd: dict, c) -> dict:
    """A state dict in TL-native keys: HookedTransformer (TransformerLens < 4) property keys
    (``blocks.0.attn.W_Q``, ...) are converted with TransformerLens's own converter."""
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if any(k.endswith((".W_Q", ".W_E", ".W_U", "._W_K")) for k in sd):
        if any(k.endswith((".rotary_sin", ".rotary_cos")) for k in sd):
            raise ValueError("cannot import: a rotary HookedTransformer (TransformerLens < 4) state "
                             "dict; its rotary convention differs from TransformerLens 4's")
        _, _, convert = _tl_bridge()
        try:
            sd = convert(sd, c)
        except ValueError as e:
            raise ValueError(f"cannot import: {first_line(e)}") from None
    return {k[len("_orig_mod."):] if k.startswith("_orig_mod.") else k: v.detach().float().cpu()
            for k, v in sd.items()}


def _infer(c, sd: dict, hint: dict | None) -> tuple[GPTConfig, dict]:
    """lgagent (GPTConfig, state dict) of a representable TL-native config and bridge-key
    state dict; ``hint`` (an export's metadata) restores what the weights cannot tell
    (dropout, bias/tie/position flags where the weights agree)."""
    C, L = c.d_model, c.n_layers
    HD = c.n_heads * c.d_head  # attention width (= C unless head_dim says otherwise)
    mlp = not c.attn_only
    norm = "pre" if c.normalization_type in ("LN", "LNPre") else "none"
    rotary = (c.positional_embedding_type or "standard").lower() == "rotary"
    need = {"embed.weight": (c.d_vocab, C), "unembed.weight": (c.d_vocab, C)}
    if not rotary:
        need["pos_embed.weight"] = (c.n_ctx, C)
    for i in range(L):
        for n in "qkv":
            need[f"blocks.{i}.attn.{n}.weight"] = (HD, C)
            need[f"blocks.{i}.attn.{n}.bias"] = (HD,)
        need[f"blocks.{i}.attn.o.weight"] = (C, HD)
        need[f"blocks.{i}.attn.o.bias"] = (C,)
        if mlp:
            need.update({f"blocks.{i}.mlp.in.weight": (c.d_mlp, C), f"blocks.{i}.mlp.in.bias":
                         (c.d_mlp,), f"blocks.{i}.mlp.out.weight": (C, c.d_mlp),
                         f"blocks.{i}.mlp.out.bias": (C,)})
    lns = ([f"blocks.{i}.{n}" for i in range(L) for n in (("ln1", "ln2") if mlp else ("ln1",))]
           + ["ln_final"])
    if c.normalization_type == "LN":
        for n in lns:
            need[f"{n}.weight"] = need[f"{n}.bias"] = (C,)
    for k, shape in need.items():
        if k not in sd:
            raise ValueError(f"cannot import: the state dict lacks {k!r}")
        if tuple(sd[k].shape) != shape:
            raise ValueError(f"cannot import: {k!r} has shape {tuple(sd[k].shape)}, the config "
                             f"says {shape}")
    extra = sorted(set(sd) - set(need) - {"unembed.bias"})
    if extra:
        raise ValueError(f"cannot import: unexpected weights {', '.join(extra[:3])}")
    hint = hint or {}
    hmc = hint.get("model_config") or {}

    def ln(name):  # (weight, bias); LNPre is LN with weight 1 and bias 0
        if c.normalization_type == "LN":
            return sd[f"{name}.weight"], sd[f"{name}.bias"]
        return torch.ones(C), torch.zeros(C)

    b_u = sd.get("unembed.bias", torch.zeros(c.d_vocab))
    W_u = sd["unembed.weight"]
    shift = None
    if b_u.abs().max() > 0:  # fold b_U into ln_f's bias: U (beta + d) = U beta + b_U
        if norm != "pre":
            raise ValueError("cannot import: a nonzero unembedding bias b_U without a final "
                             "LayerNorm has no lgagent equivalent (lm_head has no bias)")
        d = torch.linalg.lstsq(W_u.double(), b_u.double().unsqueeze(1)).solution.squeeze(1)
        if (W_u.double() @ d - b_u.double()).abs().max() > 1e-6 * (1 + b_u.abs().max()):
            raise ValueError("cannot import: the nonzero unembedding bias b_U is not in the span "
                             "of the unembedding (d_vocab > d_model?); lm_head has no bias")
        shift = d.float()
    biases = [v for k, v in sd.items() if k.endswith(".bias") and k != "unembed.bias"
              and not k.startswith("ln_final")]
    if norm == "pre":
        biases.append(ln("ln_final")[1])
    has_bias = shift is not None or any(bool(b.abs().max() > 0) for b in biases)
    if not has_bias and hmc.get("bias") is True:
        has_bias = True  # the export said so (every bias happens to be zero)
    if rotary:
        pos = "rope"
    else:
        pos = "none" if not bool(sd["pos_embed.weight"].abs().max() > 0) else "learned"
        if pos == "none" and hmc.get("pos") == "learned":
            pos = "learned"
    pos_range = None  # a randomized scheme's export comes back as one when its table fits
    if {"learned-random": "learned", "rope-random": "rope"}.get(hmc.get("pos")) == pos and (
            pos == "rope" or hmc.get("pos_range") == c.n_ctx):
        pos, pos_range = hmc["pos"], hmc.get("pos_range")
    tie = bool(torch.equal(sd["embed.weight"], W_u)) and shift is None
    if tie and hmc.get("tie_weights") is False:
        tie = False
    drops = {k: hmc[k] for k in ("dropout", "attn_dropout", "resid_dropout", "embd_dropout")
             if k in hmc}
    rope_base = float(c.rotary_base)
    if rotary and isinstance(hmc.get("rope_base"), (int, float)) and \
            int(hmc["rope_base"]) == int(c.rotary_base):
        rope_base = float(hmc["rope_base"])
    head_dim = None if HD == C and hmc.get("head_dim") != c.d_head else c.d_head
    try:
        cfg = GPTConfig(vocab_size=c.d_vocab, block_size=c.n_ctx, n_layer=L, n_head=c.n_heads,
                        n_embd=C, head_dim=head_dim, mlp=mlp, mlp_ratio=(c.d_mlp // C) if mlp else 4, norm=norm,
                        pos=pos, pos_range=pos_range, bias=has_bias, tie_weights=tie,
                        rope_base=rope_base,
                        **{"dropout": 0.0, **drops})
    except ValueError as e:
        raise ValueError(f"cannot import: {first_line(e)}") from None
    if mlp is False and "mlp_ratio" in hmc:
        cfg = dataclasses.replace(cfg, mlp_ratio=hmc["mlp_ratio"])

    out = {"wte.weight": sd["embed.weight"], "lm_head.weight": W_u}
    if pos in ("learned", "learned-random"):
        out["wpe.weight"] = sd["pos_embed.weight"]
    for i in range(L):
        p = f"blocks.{i}."
        out[f"{p}attn.c_attn.weight"] = torch.cat([sd[f"{p}attn.{n}.weight"] for n in "qkv"])
        out[f"{p}attn.c_proj.weight"] = sd[f"{p}attn.o.weight"]
        if has_bias:
            out[f"{p}attn.c_attn.bias"] = torch.cat([sd[f"{p}attn.{n}.bias"] for n in "qkv"])
            out[f"{p}attn.c_proj.bias"] = sd[f"{p}attn.o.bias"]
        if mlp:
            out[f"{p}mlp.c_fc.weight"] = sd[f"{p}mlp.in.weight"]
            out[f"{p}mlp.c_proj.weight"] = sd[f"{p}mlp.out.weight"]
            if has_bias:
                out[f"{p}mlp.c_fc.bias"] = sd[f"{p}mlp.in.bias"]
                out[f"{p}mlp.c_proj.bias"] = sd[f"{p}mlp.out.bias"]
        if norm == "pre":
            for ours, theirs in [("ln_1", "ln1")] + ([("ln_2", "ln2")] if mlp else []):
                w, b = ln(p + theirs)
                out[f"{p}{ours}.weight"] = w
                if has_bias:
                    out[f"{p}{ours}.bias"] = b
    if norm == "pre":
        w, b = ln("ln_final")
        out["ln_f.weight"] = w
        if has_bias:
            out["ln_f.bias"] = b if shift is None else b + shift
    return cfg, {k: v.clone().contiguous() for k, v in out.items()}


def _gpt(cfg: GPTConfig, state: dict) -> GPT:
    model = GPT(cfg)
    if cfg.tie_weights:
        state = {**state, "lm_head.weight": state["wte.weight"]}
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError) as e:
        raise ValueError(f"cannot import: {first_line(e)}") from None
    return model.eval()


def _bridge_of(c, sd: dict):
    """A TL-native bridge from a config and a bridge-key state dict (strict)."""
    _, boot, _ = _tl_bridge()
    cfg = _as_bridge_config({**c.to_dict(), "init_weights": False})
    bridge = boot(cfg, device="cpu")
    full = {**sd}
    full.setdefault("unembed.bias", torch.zeros(c.d_vocab))
    try:
        bridge.load_state_dict(full, strict=True)
    except RuntimeError as e:
        raise ValueError(f"cannot import: {first_line(e)}") from None
    return bridge.eval()


@torch.no_grad()
def random_tokens(vocab_size: int, n: int, T: int, seed: int = 0) -> torch.Tensor:
    """``n`` random sequences (n, T) of tokens 0..vocab_size-1, the same for a seed."""
    return torch.randint(vocab_size, (n, T), generator=torch.Generator().manual_seed(seed))


def relative_difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """max |ours - theirs| relative to the largest |ours| when that exceeds 1 (float32
    rounding grows with the logits)."""
    return float((ours - theirs).abs().max() / ours.abs().max().clamp(min=1.0))


def max_logit_difference(model: GPT, bridge, n: int = 4, seed: int = 0) -> float:
    """:func:`relative_difference` of lgagent's and TransformerLens's logits on ``n`` random
    full-length sequences."""
    tokens = random_tokens(model.config.vocab_size, n,
                           min(model.config.block_size, bridge.cfg.n_ctx), seed)
    dev = next(bridge.parameters()).device
    theirs = bridge(tokens.to(dev)).float().cpu()
    return relative_difference(model.to("cpu")(tokens).float(), theirs)


def from_hooked_transformer(model_or_state_dict_and_cfg, *, check: bool = True) -> GPT:
    """An lgagent GPT (eval mode, CPU) computing the same logits as a TransformerLens model.

    Accepts a ``TransformerBridge`` (TL-native: ``boot_native``, ``boot_tl_legacy``, or
    :func:`to_hooked_transformer`'s), a ``(state_dict, config)`` pair, or a dict
    ``{"config": ..., "state_dict": ...}`` (an export of :func:`transformer_lens_payload`,
    or a HookedTransformer's ``state_dict()`` and ``cfg`` from TransformerLens < 4, whose
    ``W_Q``-style keys are converted by TransformerLens). The config may be a
    TransformerBridgeConfig or a dict of its fields. A nonzero unembedding bias is folded
    into the final LayerNorm's bias (least squares; needs d_vocab <= d_model). With
    ``check`` the result's logits are compared with the TransformerLens model's on random
    sequences (:data:`ATOL`). ValueError, one line, for a model lgagent cannot represent
    (parallel attention and MLP, gated or non-GELU MLP, RMSNorm, GQA, soft caps, ...).
    """
    x = model_or_state_dict_and_cfg
    bridge = None
    hint = None
    if hasattr(x, "cfg") and hasattr(x, "state_dict") and callable(x.state_dict):
        c, sd, bridge = x.cfg, x.state_dict(), x
        hint = getattr(c, "lgagent", None)
    elif isinstance(x, tuple) and len(x) == 2:
        sd, c = x
    elif isinstance(x, dict) and "state_dict" in x and ("config" in x or "cfg" in x):
        sd, c = x["state_dict"], x.get("config", x.get("cfg"))
        hint = x.get("lgagent")
    else:
        raise ValueError("expected a TransformerBridge, (state_dict, config) or "
                         "{'config', 'state_dict'}, got " + type(x).__name__)
    if not isinstance(sd, dict):
        raise ValueError(f"the state dict is a {type(sd).__name__}, not a dict of tensors")
    c = _as_bridge_config(c)
    _check_representable(c)
    sd = _bridge_state(sd, c)
    cfg, state = _infer(c, sd, hint if isinstance(hint, dict) else None)
    model = _gpt(cfg, state)
    if check:
        if bridge is None:
            bridge = _bridge_of(c, sd)
        diff = max_logit_difference(model, bridge)
        if not diff <= ATOL:
            raise ValueError(f"cannot import: the converted model's logits differ from "
                             f"TransformerLens's by {diff:.3g} (> {ATOL})")
    return model


# ---------------------------------------------------------------------------------------------
# Files


@dataclasses.dataclass
class Imported:
    """A model read from an interop file, with what a checkpoint needs besides the weights."""

    model: GPT
    task: str  # "othello" | "setcomp"
    config: dict  # the run config to store (the exported run's, or a minimal one)
    step: int
    source: str  # "transformer-lens" | "safetensors" | "hf"


def task_for(cfg: GPTConfig, task: str | None, meta_task: str | None) -> str:
    """The task of an imported model: the file's own, else ``task``, else inferred from the
    vocabulary (61 -> Othello, else set complement over vocab - 1 tokens); ValueError when
    they disagree or the model does not fit the task's vocabulary and context."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if meta_task and task and meta_task != task:
        raise ValueError(f"the file holds a {meta_task} model, not {task}")
    t = meta_task or task or ("othello" if cfg.vocab_size == 61 else "setcomp")
    V, T = cfg.vocab_size, cfg.block_size
    if t == "othello" and V != 61:
        raise ValueError(f"an Othello model needs vocabulary 61 (0 = PAD, 1..60 = squares), "
                         f"this one has {V}")
    if t == "setcomp" and V < 3:
        raise ValueError(f"a set complement model needs vocabulary >= 3, this one has {V}")
    need = 59 if t == "othello" else V - 2
    if cfg.pos in ("learned", "learned-random") and T < need:
        raise ValueError(f"the model's context {T} is shorter than the {t} task's {need}")
    return t


def _minimal_config(cfg: GPTConfig, task: str) -> dict:
    """RunConfig fields that describe an imported model (no training recipe: it was not
    trained here)."""
    return {"env": task, "vocab_size": cfg.vocab_size - 1 if task == "setcomp" else None,
            "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd,
            "norm": cfg.norm, "pos": cfg.pos, "pos_range": cfg.pos_range,
            "dropout": cfg.dropout}


def read_interop_file(path, task: str | None = None) -> Imported:
    """Read a TransformerLens export (``torch.save`` of ``{"config", "state_dict"}``, ours or
    anyone's), an lgagent safetensors file or a Hugging Face GPT-2 model directory
    (:func:`read_hf_dir`) into an lgagent model and its task.

    Torch files are read with ``weights_only=True`` (no code runs; NumPy scalars, which a
    TransformerLens ``cfg.to_dict()`` holds, are allowed); a pickled model object is refused
    with a hint to save its state dict and config instead. ValueError, one line.
    """
    path = os.fspath(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, HF_CONFIG)):
        return read_hf_dir(path, task)  # a Hugging Face model directory
    if not os.path.isfile(path):
        raise ValueError(f"no file at {path}")
    with open(path, "rb") as f:
        head = f.read(9)
    # safetensors: an 8-byte little-endian header length, then the JSON header
    n = int.from_bytes(head[:8], "little") if len(head) == 9 else 0
    if head[8:9] == b"{" and 0 < n <= os.path.getsize(path) - 8:
        return _read_safetensors(path, task)
    return _read_torch(path, task)


# What a TransformerLens config dict holds besides plain values (``cfg.to_dict()``: NumPy
# scalars such as initializer_range, and their dtypes): data, not code, so allowed on load.
_NUMPY_GLOBALS = ("numpy._core.multiarray.scalar", "numpy.core.multiarray.scalar", "numpy.dtype")


def _numpy_safe_globals(path: str) -> list:
    """The NumPy scalar/dtype classes a torch file needs, when those are all it needs beyond
    ``weights_only``'s defaults (else [])."""
    import importlib

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - not a zip file: nothing to allow
        return []
    ok = [n for n in names if n in _NUMPY_GLOBALS or n.startswith("numpy.dtypes.")]
    if not names or len(ok) != len(names):
        return []
    out = []
    for n in ok:
        module, _, attr = n.rpartition(".")
        try:
            out.append(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError):
            return []
    if "numpy.dtype" in ok:  # a dtype is rebuilt through its class (numpy.dtypes.Float64DType)
        import numpy as np

        dtypes = getattr(np, "dtypes", None)
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")] if dtypes else []
    return out


def _read_torch(path: str, task: str | None) -> Imported:
    import contextlib
    import warnings

    allowed = _numpy_safe_globals(path)
    try:
        with warnings.catch_warnings(), (torch.serialization.safe_globals(allowed) if allowed
                                         else contextlib.nullcontext()):
            warnings.simplefilter("ignore")
            d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - an unpickler error of any kind is one line
        msg, full = first_line(e), str(e)
        if any(w in full for w in ("Weights only load failed", "weights_only", "Unsupported global")):
            raise ValueError(f"{path} holds a pickled Python object (a whole model?); save "
                             "torch.save({'config': model.cfg.to_dict(), 'state_dict': "
                             "model.state_dict()}, FILE) and import that") from None
        raise ValueError(f"{path} is neither a readable torch file nor a safetensors file: "
                         f"{msg}") from None
    if not isinstance(d, dict) or "state_dict" not in d or not ("config" in d or "cfg" in d):
        raise ValueError(f"{path} is not a TransformerLens export: expected a dict with "
                         "'config' and 'state_dict'")
    if d.get("format") == TL_FORMAT and d.get("version") != VERSION:
        raise ValueError(f"{path}: {TL_FORMAT} version {d.get('version')!r} is not supported")
    meta = d.get("lgagent") if isinstance(d.get("lgagent"), dict) else {}
    model = from_hooked_transformer(d)
    t = task_for(model.config, task, meta.get("task"))
    config = meta.get("config") or _minimal_config(model.config, t)
    return Imported(model, t, dict(config), int(meta.get("step") or 0), "transformer-lens")


def _read_safetensors(path: str, task: str | None) -> Imported:
    st = _require("safetensors")
    from safetensors.torch import load_file

    try:
        with st.safe_open(path, framework="pt") as f:
            md = f.metadata() or {}
        sd = load_file(path)
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise ValueError(f"{path} is neither a readable torch file nor a safetensors file: "
                         f"{first_line(e)}") from None
    if md.get("format") != ST_FORMAT:
        raise ValueError(f"{path} is a safetensors file without lgagent metadata "
                         f"(format {md.get('format')!r}, expected {ST_FORMAT!r})")
    if md.get("version") != str(VERSION):
        raise ValueError(f"{path}: {ST_FORMAT} version {md.get('version')!r} is not supported")
    try:
        mc = json.loads(md["model_config"])
        config = json.loads(md.get("config") or "{}")
        cfg = GPTConfig(**mc)
        step = int(md.get("step") or 0)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: damaged lgagent metadata: {first_line(e)}") from None
    if cfg.tie_weights and "wte.weight" in sd:
        sd.setdefault("lm_head.weight", sd["wte.weight"])
    model = GPT(cfg)
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise ValueError(f"{path}: the weights do not fit its model config: "
                         f"{first_line(e)}") from None
    t = task_for(cfg, task, md.get("task") or None)
    return Imported(model.eval(), t, config or _minimal_config(cfg, t), step, "safetensors")


def checkpoint_of(imported: Imported) -> dict:
    """A weights-only lgagent checkpoint (agents.checkpoint format, with checksum) holding
    an imported model as its raw weights: evaluated, played and probed like any run, not
    resumable (no optimizer, schedule or RNG state)."""
    from agents.checkpoint import FORMAT, check, checksum
    from agents.checkpoint import VERSION as CKPT_VERSION

    model = imported.model
    config = {**imported.config, "env": imported.task}
    ckpt = {"format": FORMAT, "version": CKPT_VERSION, "step": imported.step,
            "config": config, "model_config": dataclasses.asdict(model.config),
            "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "optimizer": {}, "scheduler": {}, "ema": None, "bema": None, "rng": {}, "data": {}}
    ckpt["checksum"] = checksum(ckpt)
    return check(ckpt, "the imported checkpoint")


# ---------------------------------------------------------------------------------------------
# Hugging Face transformers: GPT2LMHeadModel
#
# lgagent's pre-norm, learned-position model with an MLP is GPT-2's architecture; the map
# (checked numerically in tests/agents/test_interop_hf.py):
#
# * wte/wpe -> transformer.wte/wpe (vocab_size, n_positions = block_size); ln_1/ln_2/ln_f ->
#   transformer.h.{l}.ln_1/ln_2, transformer.ln_f (layer_norm_epsilon 1e-5, torch's default);
# * c_attn (3C, C), q, k, v stacked, heads side by side -> attn.c_attn, a Conv1D (C, 3C): the
#   transpose, same order and head split; c_proj, mlp.c_fc, mlp.c_proj: transposed likewise;
#   scores scaled by 1/sqrt(d_head) (scale_attn_weights, not by layer index);
# * exact GELU -> activation_function="gelu" (GPT-2's default "gelu_new" is the tanh
#   approximation: not lgagent's); n_inner = mlp_ratio * n_embd;
# * lm_head (no bias in either) -> lm_head; untied -> tie_word_embeddings=False, tied -> True;
# * bias=False -> zero biases (GPT-2 always has them; read back as bias=False);
# * dropouts -> resid_pdrop (residual branches: attention and MLP output), embd_pdrop,
#   attn_pdrop (attention probabilities).
#
# GPT-2 cannot express Post-Norm or no LayerNorm (its LayerNorms sit before each sublayer),
# rotary or no positions (it always adds learned positions) or attention-only blocks (it
# always has an MLP): those are refused (TransformerLens takes all but Post-Norm).

HF_INSTALL = 'pip install "lgagent[hf]"'
HF_CONFIG, HF_WEIGHTS = "config.json", "model.safetensors"
TOKEN_MAP = "lgagent_tokens.json"  # the token map of an export: id -> name, PAD


def _transformers():
    try:
        import transformers
    except ImportError:
        raise MissingExtra(f"transformers is not installed; {HF_INSTALL}") from None
    return transformers


def hf_config(cfg: GPTConfig, meta: dict | None = None) -> dict:
    """The ``GPT2Config`` fields of a GPT2LMHeadModel equal to ``cfg`` (``meta``, the lgagent
    metadata, goes in as ``lgagent``). ValueError, one line, for what GPT-2 cannot express."""
    why = {("norm", "post"): "Post-Norm (norm='post'): GPT-2's LayerNorms sit before each "
                             "sublayer",
           ("norm", "none"): "no LayerNorm (norm='none'): GPT-2 always normalises before each "
                             "sublayer",
           ("pos", "rope"): "rotary positions (pos='rope'): GPT-2 adds learned positions",
           ("pos", "none"): "no positions (pos='none'): GPT-2 always adds learned positions",
           ("pos", "rope-random"): "rotary positions (pos='rope-random'): GPT-2 adds learned "
                                   "positions",
           ("pos", "alibi"): "ALiBi (pos='alibi'): GPT-2 has no attention bias by distance"}
    for key in (("norm", cfg.norm), ("pos", cfg.pos)):
        if key in why:
            raise ValueError(f"cannot export to Hugging Face GPT-2: {why[key]} (lgagent export "
                             "--to transformer-lens or safetensors can)")
    if cfg.head_size * cfg.n_head != cfg.n_embd:
        raise ValueError(f"cannot export to Hugging Face GPT-2: head_dim {cfg.head_dim} x n_head "
                         f"{cfg.n_head} != n_embd {cfg.n_embd}: GPT-2's head size is n_embd // "
                         "n_head (lgagent export --to transformer-lens or safetensors can)")
    if not cfg.mlp:
        raise ValueError("cannot export to Hugging Face GPT-2: an attention-only model (mlp "
                         "False): every GPT-2 block has an MLP (lgagent export --to "
                         "transformer-lens or safetensors can)")
    meta = meta or {}
    if cfg.pos == "learned-random" and meta.get("model_config"):
        # what is exported is the evaluation-time model: learned positions 0..block_size-1
        meta = {**meta, "model_config": {**meta["model_config"], "pos": "learned",
                                         "pos_range": None}}
    vocab = meta.get("vocab") or {}
    return {
        "vocab_size": cfg.vocab_size, "n_positions": cfg.block_size, "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_inner": cfg.mlp_ratio * cfg.n_embd,
        "activation_function": "gelu", "layer_norm_epsilon": EPS,
        "resid_pdrop": cfg.drop("resid"), "embd_pdrop": cfg.drop("embd"),
        "attn_pdrop": cfg.drop("attn"), "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
        "tie_word_embeddings": cfg.tie_weights, "bos_token_id": None, "eos_token_id": None,
        "pad_token_id": vocab.get("pad_id"), "architectures": ["GPT2LMHeadModel"],
        "lgagent": meta,
    }


def hf_state_dict(model: GPT) -> dict:
    """A GPT2LMHeadModel's state dict (``transformer.*`` and ``lm_head.weight`` keys) equal to
    ``model``'s weights (Conv1D weights are the transposed Linear ones)."""
    cfg = model.config
    hf_config(cfg)  # the one-line refusal of what GPT-2 lacks
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    ref = sd["wte.weight"]

    def bias(key, n):
        return sd[key] if key in sd else torch.zeros(n, dtype=ref.dtype, device=ref.device)

    C, H = cfg.n_embd, cfg.mlp_ratio * cfg.n_embd
    # learned-random: the evaluation-time model, positions 0..block_size-1 (the first rows)
    out = {"transformer.wte.weight": ref,
           "transformer.wpe.weight": sd["wpe.weight"][: cfg.block_size]}
    for i in range(cfg.n_layer):
        p, q = f"blocks.{i}.", f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            out[f"{q}{ln}.weight"] = sd[f"{p}{ln}.weight"]
            out[f"{q}{ln}.bias"] = bias(f"{p}{ln}.bias", C)
        for ours, n in (("attn.c_attn", 3 * C), ("attn.c_proj", C), ("mlp.c_fc", H),
                        ("mlp.c_proj", C)):
            out[f"{q}{ours}.weight"] = sd[f"{p}{ours}.weight"].t()
            out[f"{q}{ours}.bias"] = bias(f"{p}{ours}.bias", n)
    out["transformer.ln_f.weight"] = sd["ln_f.weight"]
    out["transformer.ln_f.bias"] = bias("ln_f.bias", C)
    out["lm_head.weight"] = sd["lm_head.weight"]
    return {k: v.clone().contiguous() for k, v in out.items()}


def to_hf(model_or_checkpoint, weights: str = "raw"):
    """A ``transformers`` GPT2LMHeadModel (eval mode, CPU) computing the same logits as an
    lgagent model (a GPT, an EMA/BEMA, a checkpoint dict or path: see
    :func:`to_hooked_transformer`); ``model.config.lgagent`` holds :func:`meta_of`'s metadata.
    ValueError, one line, for what GPT-2 cannot express; MissingExtra without transformers."""
    return _hf_of(*_model_and_meta(model_or_checkpoint, weights))


def _hf_of(model: GPT, meta: dict):
    fields = hf_config(model.config, meta)  # refused before the slow import
    tf = _transformers()
    hf = tf.GPT2LMHeadModel(tf.GPT2Config(**fields))
    missing, unexpected = hf.load_state_dict(hf_state_dict(model), strict=False)
    if missing or unexpected:  # a tied lm_head shares wte: nothing else may be left out
        raise ValueError(f"the GPT-2 model does not take the weights (missing {missing}, "
                         f"unexpected {unexpected}): a bug, please report it")
    return hf.eval()


def token_names(task: str | None, vocab_size: int) -> list[str] | None:
    """Each token's name: Othello ``<pad>``, then the squares ``a1`` ... ``h8`` of tokens 1..60
    (othello_env.tokens); set complement ``0`` ... ``v-1``, then ``<pad>``; None otherwise."""
    if task == "othello":
        from othello_env.tokens import TOKEN_TO_SQUARE

        return ["<pad>"] + [f"{'abcdefgh'[s % 8]}{s // 8 + 1}" for s in TOKEN_TO_SQUARE[1:]]
    if task == "setcomp":
        return [str(i) for i in range(vocab_size - 1)] + ["<pad>"]
    return None


def save_hf(model_or_checkpoint, directory, weights: str = "raw") -> dict:
    """Write a Hugging Face model directory that ``from_pretrained(directory)`` loads offline:
    ``config.json`` (GPT2Config, with the lgagent metadata as ``lgagent``),
    ``model.safetensors``, ``generation_config.json``, the token map ``lgagent_tokens.json``
    (``{"task", "pad_id", "tokens": [name of each id]}``) and, for a known task, a word-level
    tokenizer over those names (``tokenizer.json``: ``"d3 c5"`` -> ids) for pipelines.
    Returns the metadata."""
    model, meta = _model_and_meta(model_or_checkpoint, weights)
    hf = _hf_of(model, meta)
    directory = os.fspath(directory)
    hf.save_pretrained(directory)
    names = token_names(meta["task"], model.config.vocab_size)
    pad = (meta.get("vocab") or {}).get("pad_id")
    with open(os.path.join(directory, TOKEN_MAP), "w") as f:
        json.dump({"task": meta["task"], "pad_id": pad, "tokens": names,
                   "note": (meta.get("vocab") or {}).get("tokens")}, f, indent=1)
    if names is not None:
        _save_tokenizer(directory, names, names[pad])
    return meta


def _save_tokenizer(directory: str, names: list[str], pad: str) -> None:
    """A word-level tokenizer over ``names`` (whitespace-separated), saved for AutoTokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tf = _transformers()
    tok = Tokenizer(models.WordLevel({n: i for i, n in enumerate(names)}, unk_token=pad))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins with spaces
    fast = tf.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=pad, unk_token=pad,
                                      model_max_length=None)
    fast.save_pretrained(directory)


@torch.no_grad()
def max_hf_logit_difference(model: GPT, hf, tokens: torch.Tensor | None = None, n: int = 4,
                            seed: int = 0) -> float:
    """:func:`relative_difference` of lgagent's and GPT2LMHeadModel's logits over ``tokens``
    (default: ``n`` random full-length sequences)."""
    if tokens is None:
        tokens = random_tokens(model.config.vocab_size, n, model.config.block_size, seed)
    theirs = hf(input_ids=tokens).logits.float()
    return relative_difference(model.to("cpu").eval()(tokens).float(), theirs)


_HF_MUST = {"model_type": "gpt2", "scale_attn_weights": True,
            "scale_attn_by_inverse_layer_idx": False, "add_cross_attention": False}


def read_hf_dir(path, task: str | None = None) -> Imported:
    """A Hugging Face GPT-2 model directory (``config.json`` + ``model.safetensors``: an
    export of :func:`save_hf`, or any GPT2LMHeadModel that lgagent can represent) as an
    lgagent model. The lgagent metadata in ``config.json``, when there, gives the exact
    config (dropouts, biases) and run config; else it is read off the GPT-2 config and the
    weights (all biases zero -> ``bias=False``). The logits are checked against
    transformers' model (:data:`ATOL`). ValueError, one line."""
    from safetensors.torch import load_file

    path = os.fspath(path)
    try:
        with open(os.path.join(path, HF_CONFIG)) as f:
            c = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: no readable {HF_CONFIG}: {first_line(e)}") from None
    weights_file = os.path.join(path, HF_WEIGHTS)
    if not os.path.isfile(weights_file):
        sharded = os.path.isfile(weights_file + ".index.json")
        raise ValueError(f"{path}: no {HF_WEIGHTS}" + (" (sharded weights are not supported)"
                                                      if sharded else ""))
    for k, want in _HF_MUST.items():
        if c.get(k, want) != want:
            raise ValueError(f"cannot import {path}: {k}={c.get(k)!r} has no lgagent equivalent "
                             f"(lgagent imports GPT-2 models: {k}={want!r})")
    act = c.get("activation_function", "gelu_new")
    if act != "gelu":
        raise ValueError(f"cannot import {path}: activation_function={act!r} (lgagent's MLP "
                         "uses exact GELU, 'gelu'; 'gelu_new' is the tanh approximation)")
    eps = c.get("layer_norm_epsilon", 1e-5)
    if not math.isclose(eps, EPS, rel_tol=1e-9, abs_tol=0.0):
        raise ValueError(f"cannot import {path}: layer_norm_epsilon={eps!r} (lgagent uses {EPS})")
    try:
        sd = load_file(weights_file)
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise ValueError(f"{weights_file}: not a readable safetensors file: "
                         f"{first_line(e)}") from None
    sd = {(k if k.startswith(("transformer.", "lm_head.")) else f"transformer.{k}"): v
          for k, v in sd.items()}
    meta = c.get("lgagent") if isinstance(c.get("lgagent"), dict) else {}
    try:
        C, L, heads = int(c["n_embd"]), int(c["n_layer"]), int(c["n_head"])
        inner = c.get("n_inner") or 4 * C
        if inner % C:
            raise ValueError(f"n_inner={inner} is not a multiple of n_embd={C}")
        tied = bool(c.get("tie_word_embeddings", True)) or "lm_head.weight" not in sd
        biases = [v for k, v in sd.items() if k.endswith(".bias")]
        inferred = GPTConfig(
            vocab_size=int(c["vocab_size"]), block_size=int(c["n_positions"]), n_layer=L,
            n_head=heads, n_embd=C, mlp=True, mlp_ratio=inner // C, norm="pre", pos="learned",
            dropout=float(c.get("resid_pdrop", 0.1)), attn_dropout=float(c.get("attn_pdrop", 0.1)),
            embd_dropout=float(c.get("embd_pdrop", 0.1)),
            bias=any(bool(b.any()) for b in biases), tie_weights=tied)
        cfg = GPTConfig(**meta["model_config"]) if meta.get("model_config") else inferred
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"cannot import {path}: {first_line(e)}") from None
    dims = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "mlp_ratio", "tie_weights")
    if any(getattr(cfg, k) != getattr(inferred, k) for k in dims) or \
            cfg.head_size != inferred.head_size:
        raise ValueError(f"{path}: its lgagent metadata does not describe its GPT-2 config")
    state = {"wte.weight": sd["transformer.wte.weight"], "wpe.weight": sd["transformer.wpe.weight"],
             "ln_f.weight": sd["transformer.ln_f.weight"]}
    names = [("ln_1.weight", False), ("ln_2.weight", False)] + [
        (f"{m}.weight", True) for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")]
    try:
        for i in range(L):
            p, q = f"blocks.{i}.", f"transformer.h.{i}."
            for name, conv in names:
                w = sd[q + name]
                state[p + name] = w.t().contiguous() if conv else w
        if not cfg.tie_weights:
            state["lm_head.weight"] = sd["lm_head.weight"]
        bias_keys = [k for k in sd if k.endswith(".bias")]
        for k in bias_keys:
            ours = k.replace("transformer.h.", "blocks.").replace("transformer.", "")
            if cfg.bias:
                state[ours] = sd[k]
            elif sd[k].any():
                raise ValueError(f"{k} is nonzero but the lgagent metadata says bias=False")
    except KeyError as e:
        raise ValueError(f"cannot import {path}: the weights lack {first_line(e)}") from None
    model = _gpt(cfg, state)
    hf = _transformers().GPT2LMHeadModel.from_pretrained(path).eval()
    diff = max_hf_logit_difference(model, hf)
    if not diff <= ATOL:
        raise ValueError(f"cannot import {path}: the converted model's logits differ from "
                         f"transformers' by {diff:.3g} (> {ATOL})")
    t = task_for(cfg, task, meta.get("task"))
    config = meta.get("config") or _minimal_config(cfg, t)
    return Imported(model, t, dict(config), int(meta.get("step") or 0), "hf")
