"""Weight snapshots: a run's raw weights every N steps, for post-hoc averaging.

``lgagent train --snapshot-every N`` writes ``RUN_DIR/snapshots/step_<step>.safetensors``
(the step zero-padded to 9 digits; longer steps keep all their digits) at step 0 (the
initial weights), at every multiple of N and at the run's last step. Each file is a
safetensors file (a JSON header, then the raw little-endian tensors; no code runs on
load) holding the model's state dict as trained (float32; the names of
``checkpoint["model"]``) and the metadata ``{"format": "lgagent-snapshot", "version": "1",
"step": "<step>"}``. One snapshot costs the state dict's bytes (parameters x 4 plus the
few buffers) and a header of a few kB: :func:`snapshot_bytes`.

This module is the format and the reader (:func:`read`, :func:`listing`); the trainer
writes the files atomically (``train.training.trainer``); ``agents.posthoc`` averages
them. safetensors is a core dependency for this (it also serves ``lgagent export``).
"""

from __future__ import annotations

import re
from pathlib import Path

DIR = "snapshots"  # inside a RUN_DIR
GLOB = "step_*.safetensors"  # the names of file_name
TEMP_GLOB = ".step_*.tmp"  # one being written (train.atomic: .<name>.<random>.tmp)
FORMAT = "lgagent-snapshot"
VERSION = "1"
_NAME = re.compile(r"step_(\d{9,13})\.safetensors")
HEADER_BYTES = 4096  # an upper estimate of a snapshot's header (names, shapes, metadata)


def file_name(step: int) -> str:
    """The file name of the snapshot at ``step``."""
    return f"step_{step:09d}.safetensors"


def step_of(name: str) -> int | None:
    """The step a snapshot file name holds; None for any other name."""
    m = _NAME.fullmatch(name)
    return int(m.group(1)) if m else None


def listing(run_dir) -> dict[int, Path]:
    """``{step: path}`` of the snapshots in ``run_dir/snapshots/``, by step (empty if none)."""
    d = Path(run_dir) / DIR
    if not d.is_dir():
        return {}
    found = {}
    for p in d.iterdir():
        step = step_of(p.name)
        if step is not None:
            found[step] = p
    return dict(sorted(found.items()))


def state_bytes(state: dict) -> int:
    """Bytes of a state dict's tensors."""
    return sum(t.numel() * t.element_size() for t in state.values())


def snapshot_bytes(model) -> int:
    """An upper estimate of one snapshot file of ``model`` (a module or a state dict)."""
    state = model if isinstance(model, dict) else model.state_dict()
    return state_bytes(state) + HEADER_BYTES


def encode(state: dict, step: int) -> bytes:
    """The bytes of the snapshot file of ``state`` (a model state dict) at ``step``.

    Tensors are copied to contiguous CPU tensors (tied weights are stored once per name)."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    return save(tensors, metadata={"format": FORMAT, "version": VERSION, "step": str(step)})


def read(path, shapes: dict | None = None) -> dict:
    """The state dict of the snapshot file ``path``; ValueError (one line) when it is missing,
    damaged (truncated, not safetensors, another format), holds another step than its name
    says, a non-float tensor, or (with ``shapes``: ``{name: shape}``) weights of another
    model."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"snapshot {path} is missing")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ValueError(f"snapshot {path} is damaged (not a readable safetensors file: "
                         f"{msg})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"snapshot {path} is not an lgagent snapshot (no format {FORMAT!r})")
    step = step_of(path.name)
    if step is not None and meta.get("step") != str(step):
        raise ValueError(f"snapshot {path} holds step {meta.get('step')!r}, its name says {step}")
    for k, t in state.items():
        if not t.is_floating_point():
            raise ValueError(f"snapshot {path}: tensor {k!r} is not a float tensor")
    if shapes is not None:
        got = {k: tuple(v.shape) for k, v in state.items()}
        if got != {k: tuple(v) for k, v in shapes.items()}:
            diff = sorted(set(got) ^ set(shapes)) or sorted(
                k for k in got if got[k] != tuple(shapes[k]))
            raise ValueError(f"snapshot {path} does not fit the run's model (first difference: "
                             f"{diff[0]!r})")
    return state


def float32(state: dict) -> dict:
    """A snapshot's tensors as float32 (the dtype the averages keep)."""
    import torch  # here: the names and the listing above serve torch-free callers

    return {k: v if v.dtype == torch.float32 else v.float() for k, v in state.items()}
