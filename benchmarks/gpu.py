"""The device check in one command: train, resume, DDP, eval and play on one CUDA GPU; one JSON.

    python benchmarks/gpu.py                  # one CUDA GPU, under 8 minutes
    python benchmarks/gpu.py --smoke          # the whole script on the CPU, tiny sizes (CI)
    python benchmarks/gpu.py --peak-flops 989e12 --steps 300 --batch-size 512

What it does, in order (each part's result is a key of the JSON):

* ``train``: ``othello-gpt`` (``--preset``) at batch 512 with ``--ema``, the
  trainer's own step (:meth:`train.training.trainer.Trainer.train_step`, bf16 autocast on
  CUDA, fused AdamW) and data path (:mod:`train.training.prefetch`), once eager
  (``eager``) and once ``torch.compile``'d (``compile``): ``warmup`` steps (the
  compilation happens there), then ``steps`` timed ones. Per case: tokens/s,
  ``step_s`` (mean wall time of a timed step, synchronised at both ends),
  ``data_share`` (the time the step waited for its batch / wall time, as the
  trainer's ``charts/data_share``), ``peak_memory_bytes`` (CUDA
  ``max_memory_allocated``), ``flops_per_step`` and ``mfu``.
* ``averaging``: the mean time of one EMA and one BEMA update of that model
  (foreach ops on the device, synchronised) and its share of the eager step.
* ``resume``: ``lgagent train`` (the same entry, in this process) for ``N``
  steps uninterrupted, and for ``N/2`` with ``--stop-at`` then ``--resume``:
  the raw and EMA weights of the two must be equal, bitwise on the CPU; on CUDA
  see "Determinism" below.
* ``torchrun``: the README's line ``torchrun --nproc_per_node 1 --no-python
  lgagent train ...`` on the device (one process trains without a process
  group); and ``torchrun_ddp``: this script under ``torchrun --nproc_per_node 1``
  trains through DistributedDataParallel with a one-rank process group, NCCL on
  CUDA (gloo on the CPU), the same ``train.training.run.run_training`` entry.
* ``eval`` and ``play``: ``lgagent eval --json`` and ``lgagent play --json`` of
  the resumed run, on the device.

``--smoke`` runs every part at tiny sizes (preset ``tiny``, batch 16, a few
steps, float32) on the CPU, except the ``compile`` case and the ``lgagent``
torchrun line (tests/train/cli/test_train.py and tests/train/training/test_distributed.py run those; each
adds processes or compilation that would triple its time); ``torchrun_ddp``
uses gloo there. ``--smoke --device cuda`` is the same quick check on a GPU,
compile and torchrun included.

MFU (model FLOPs utilisation) = flops_per_step / step_s / peak, with the FLOPs of
the matrix multiplications only (PaLM / nanoGPT convention)::

    flops_per_token = 6 * N + 12 * n_layer * n_embd * T
    flops_per_step  = flops_per_token * batch_size * T

``N`` = the weights of every ``nn.Linear`` (attention q/k/v and output, MLP,
output head; embeddings are lookups), ``6 N`` = forward (2 N) and backward (4 N)
per token, ``12 n_layer n_embd T`` = the attention scores ``QK^T`` and ``AV``
(forward 4 n_embd T per token and layer, times 3 with the backward), counted over
the full T x T square as PaLM does, although the causal kernel skips half of it.
LayerNorm, GELU, softmax and the optimizer are not counted. ``peak`` is the GPU's
dense bf16 tensor-core peak from :data:`PEAK_BF16_FLOPS` (matched on the device
name) or ``--peak-flops``; unknown: ``mfu`` is null.

Determinism (CUDA): ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` is set for the whole
process (cuBLAS picks the same reduction order every call), and the resume check
runs under ``torch.use_deterministic_algorithms(True, warn_only=True)``: the ops
without a deterministic CUDA kernel warn instead of failing, and their names go
to ``resume.nondeterministic_ops``. Dropout draws from the CUDA generator whose
state the checkpoint restores. The check is ``ok`` when the weights are bitwise
equal, or when the largest absolute difference is at most ``RESUME_TOLERANCE``
times the largest absolute weight (reported as ``max_rel_diff``).

Exit code 0 when every part is ok, 1 when one failed (the JSON says which), 2 for
bad options (e.g. no CUDA device without ``--smoke``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

# cuBLAS must see this before its first handle is made (any CUDA matmul): set it first
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402

from train.training import config as C  # noqa: E402
from train.training.assemble import build  # noqa: E402
from train.training.distributed import Dist, resolve_device  # noqa: E402
from train.training.trainer import Trainer  # noqa: E402

# Dense bf16 tensor-core peak FLOP/s (no sparsity), NVIDIA datasheets; the first name that
# is a substring of torch.cuda.get_device_name() wins, so the longer names come first.
PEAK_BF16_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM
    ("GH200", 989e12),
    ("H200 NVL", 835e12),
    ("H200", 989e12),  # SXM
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
)
# resume check on CUDA: largest |w_resumed - w_uninterrupted| / largest |w| allowed
RESUME_TOLERANCE = 1e-3
LGAGENT = shutil.which("lgagent", path=str(Path(sys.executable).parent)) or "lgagent"


@dataclass(frozen=True)
class Sizes:
    """How much each part does (full run on a GPU, or the CPU smoke run)."""

    preset: str
    batch_size: int
    warmup: int
    steps: int
    resume_steps: int
    averaging_updates: int
    eval_size: int
    play_games: int
    torchrun_steps: int
    timeout_s: int


FULL = Sizes("othello-gpt", 512, 20, 300, 60, 50, 1024, 50, 20, 300)
SMOKE = Sizes("tiny", 16, 2, 6, 6, 5, 32, 4, 2, 150)


def peak_flops(device: torch.device, override: float | None) -> tuple[float | None, str]:
    """(peak bf16 FLOP/s, where it came from) for ``device``; (None, why) when unknown."""
    if override is not None:
        return override, "--peak-flops"
    if device.type != "cuda":
        return None, "no peak known for the CPU (give --peak-flops)"
    name = torch.cuda.get_device_name(device)
    for key, flops in PEAK_BF16_FLOPS:
        if key in name:
            return flops, f"table: {key}"
    return None, f"{name} is not in PEAK_BF16_FLOPS (give --peak-flops)"


def model_flops_per_step(model: torch.nn.Module, batch_size: int, T: int) -> int:
    """Training FLOPs of one step (see the module docstring): matmuls only, fwd + bwd."""
    n = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    cfg = model.config
    per_token = 6 * n + 12 * cfg.n_layer * cfg.n_embd * T
    return per_token * batch_size * T


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _config(sizes: Sizes, device: torch.device, **extra) -> C.RunConfig:
    cfg = C.merge({"env": "othello", "preset": sizes.preset, "batch_size": sizes.batch_size,
                   "ema": True, "eval_every": 0, "ckpt_every": 0, "play_games": 0,
                   "eval_size": 64, "device": device.type, **extra})
    C.validate(cfg)
    return C.resolve(cfg)


def train_case(sizes: Sizes, device: torch.device, compiled: bool, peak: float | None) -> dict:
    """Time ``sizes.steps`` steps (after ``sizes.warmup``) of the trainer's step and data path."""
    total = sizes.warmup + sizes.steps
    cfg, task, model_cfg = build(_config(sizes, device, steps=total, compile=compiled))
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as out:
        tr = Trainer(cfg, task, model_cfg, out, device=device, progress=False)
        tr.model.train()
        tr._open_data(total)
        try:
            t0 = time.perf_counter()
            for _ in range(sizes.warmup):  # torch.compile compiles here
                loss, _ = tr.train_step(tr._next_batch().to(device, non_blocking=True))
            synchronize(device)
            warmup_s = time.perf_counter() - t0
            wait = 0.0
            t0 = time.perf_counter()
            for _ in range(sizes.steps):
                t = time.perf_counter()
                batch = tr._next_batch()
                wait += time.perf_counter() - t
                loss, _ = tr.train_step(batch.to(device, non_blocking=True))
            synchronize(device)
            elapsed = time.perf_counter() - t0
        finally:
            tr._close_data()
        final_loss = float(loss)
        flops = model_flops_per_step(tr.model, cfg.batch_size, cfg.train_max_len)
        params = tr.model.num_params()
        averaging = time_averaging(tr, sizes, device) if not compiled else None
        del tr
    gc.collect()
    step_s = elapsed / sizes.steps
    tokens = cfg.batch_size * cfg.train_max_len
    res = {"preset": cfg.preset, "params": params, "batch_size": cfg.batch_size,
           "seq_len": cfg.train_max_len, "compile": compiled, "ema": True,
           "dtype": "bf16 autocast" if device.type == "cuda" else "float32",
           "prefetch": cfg.prefetch, "warmup_steps": sizes.warmup, "warmup_s": round(warmup_s, 3),
           "steps": sizes.steps, "step_s": round(step_s, 6),
           "tokens_per_s": round(tokens / step_s, 1), "data_share": round(wait / elapsed, 6),
           "peak_memory_bytes": (torch.cuda.max_memory_allocated(device)
                                 if device.type == "cuda" else None),
           "flops_per_step": flops,
           "mfu": round(flops / step_s / peak, 4) if peak else None,
           "final_loss": round(final_loss, 4), "loss_finite": bool(final_loss == final_loss)}
    res["ok"] = res["loss_finite"]
    if averaging is not None:
        res["averaging"] = {name: dict(a, share_of_step=round(a["update_s"] / step_s, 4))
                            for name, a in averaging.items()}
    return res


def time_averaging(tr: Trainer, sizes: Sizes, device: torch.device) -> dict:
    """Mean seconds of one EMA and one BEMA update of the trained model (synchronised)."""
    from agents.averaging import BEMA

    cfg = tr.cfg
    bema = BEMA(tr.model, ema_power=cfg.bema_ema_power, bias_power=cfg.bema_bias_power,
                lag=cfg.bema_lag, multiplier=cfg.bema_multiplier, burn_in=cfg.bema_burn_in,
                update_every=cfg.bema_update_every)
    out = {}
    for name, avg in (("ema", tr.averages["ema"]), ("bema", bema)):
        avg.update(tr.model)  # past BEMA's snapshot: the timed calls are full updates
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(sizes.averaging_updates):
            avg.update(tr.model)
        synchronize(device)
        out[name] = {"updates": sizes.averaging_updates,
                     "update_s": round((time.perf_counter() - t0) / sizes.averaging_updates, 7)}
    return out


@contextlib.contextmanager
def deterministic(device: torch.device):
    """Deterministic CUDA kernels where torch has them (warn for the others); yields a dict
    that receives ``nondeterministic_ops``: the ops that warned."""
    info = {"nondeterministic_ops": []}
    if device.type != "cuda":
        yield info
        return
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield info
        info["nondeterministic_ops"] = sorted({str(w.message).splitlines()[0][:160]
                                               for w in caught
                                               if "determinis" in str(w.message)})
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def _train_cli(values: dict, resume: bool = False) -> dict:
    """``lgagent train`` in this process: its prepare + run_training (the CLI's own entry)."""
    from train.training.run import prepare, run_training

    cfg, task, model_cfg, ckpt = prepare(values, resume=resume, dist_info=Dist())
    with contextlib.redirect_stdout(sys.stderr):  # its progress lines; stdout is the JSON's
        return run_training(cfg, task, model_cfg, ckpt, dist_info=Dist(), progress=False)


def resume_check(sizes: Sizes, device: torch.device, root: Path) -> dict:
    """N steps uninterrupted vs N/2 with --stop-at then --resume: the same weights?"""
    from agents.checkpoint import averaged_states, load

    n, half = sizes.resume_steps, sizes.resume_steps // 2
    values = {"env": "othello", "preset": sizes.preset, "batch_size": sizes.batch_size,
              "steps": n, "ema": True, "eval_every": 0, "ckpt_every": 0, "play_games": 0,
              "eval_size": 64, "device": device.type, "log_every": max(1, half // 3)}
    full, split = root / "full", root / "split"
    t0 = time.perf_counter()
    with deterministic(device) as info:
        _train_cli({**values, "out": str(full)})
        _train_cli({**values, "out": str(split), "stop_at": half})
        stopped_at = load(split)["step"]
        _train_cli({"out": str(split)}, resume=True)
    a, b = load(full), load(split)
    bitwise, max_diff, max_w = True, 0.0, 0.0
    for name in ("raw", "ema"):  # model state dicts of the raw and the EMA weights
        wa, wb = ((c["model"] if name == "raw" else averaged_states(c)[name]["module"])
                  for c in (a, b))
        for k in wa:
            x, y = wa[k].double(), wb[k].double()
            bitwise &= torch.equal(wa[k], wb[k])
            max_diff = max(max_diff, float((x - y).abs().max()))
            max_w = max(max_w, float(x.abs().max()))
    rel = max_diff / max_w if max_w else 0.0
    return {"steps": n, "stopped_at": stopped_at, "final_step": b["step"],
            "data_step": b["data"]["step"], "bitwise": bitwise,
            "max_abs_diff": max_diff, "max_rel_diff": rel,
            "tolerance_rel": 0.0 if device.type == "cpu" else RESUME_TOLERANCE,
            "deterministic_algorithms": device.type == "cuda",
            "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
            "nondeterministic_ops": info["nondeterministic_ops"],
            "seconds": round(time.perf_counter() - t0, 2),
            "ok": b["step"] == n and stopped_at == half and (
                bitwise or (device.type == "cuda" and rel <= RESUME_TOLERANCE)),
            "run": str(split)}


def _subprocess(cmd: list, timeout: int) -> dict:
    """Run ``cmd`` (OMP_NUM_THREADS=1 unless set; no inherited torchrun variables)."""
    env = {**os.environ}
    env.setdefault("OMP_NUM_THREADS", "1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [str(c) for c in cmd]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                           check=False)
    except subprocess.TimeoutExpired:
        return {"ok": False, "returncode": None, "seconds": timeout,
                "error": f"timed out after {timeout} s"}
    res = {"ok": p.returncode == 0, "returncode": p.returncode,
           "seconds": round(time.perf_counter() - t0, 2)}
    if p.returncode:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        res["error"] = lines[-1][:300] if lines else f"exit code {p.returncode}"
    res["stdout"] = p.stdout
    return res


def _torchrun(*args) -> list:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "--standalone",
            *map(str, args)]


def torchrun_lgagent(sizes: Sizes, device: torch.device, root: Path) -> dict:
    """The README's line, one process: torchrun --nproc_per_node 1 --no-python lgagent train."""
    out = root / "torchrun"
    res = _subprocess(_torchrun(
        "--no-python", LGAGENT, "train", "--env", "othello", "--preset", sizes.preset,
        "--batch-size", sizes.batch_size, "--steps", sizes.torchrun_steps, "--eval-every", 0,
        "--eval-size", 64, "--play-games", 0, "--device", device.type, "--no-progress",
        "--out", out), sizes.timeout_s)
    res.pop("stdout", "")
    res["command"] = "torchrun --nproc_per_node 1 --no-python lgagent train ..."
    res["process_group"] = False  # lgagent starts one only for 2 processes or more
    if res["ok"]:
        from agents.checkpoint import load

        res["ok"] = load(out)["step"] == sizes.torchrun_steps
    return res


def torchrun_ddp(sizes: Sizes, device: torch.device, root: Path, smoke: bool) -> dict:
    """This script under torchrun, one rank: DDP with a real process group (NCCL on CUDA)."""
    res = _subprocess(_torchrun(
        Path(__file__).resolve(), "--ddp-child", "--device", device.type, "--out",
        root / "ddp", "--batch-size", sizes.batch_size, *(["--smoke"] if smoke else [])),
        sizes.timeout_s)
    stdout = res.pop("stdout", "")
    if res["ok"]:
        try:
            child = json.loads(stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {**res, "ok": False, "error": "the child printed no JSON"}
        res.update(child)
        res["ok"] = (child["backend"] == ("nccl" if device.type == "cuda" else "gloo")
                     and child["params_in_sync"] is True
                     and child["step"] == sizes.torchrun_steps)
    return res


def ddp_child(sizes: Sizes, device_name: str, out: Path) -> None:
    """Under torchrun: train through DDP with a one-rank process group; print one JSON line."""
    import torch.distributed as tdist

    from train.training.distributed import dist_from_env

    @dataclass(frozen=True)
    class OneRankGroup(Dist):
        """A single torchrun process that still forms a process group and wraps in DDP."""

        @property
        def enabled(self) -> bool:
            return True

    env = dist_from_env()
    d = OneRankGroup(rank=env.rank, world_size=env.world_size, local_rank=env.local_rank)
    backends = []
    init = tdist.init_process_group

    def recording_init(backend=None, *args, **kwargs):
        backends.append(backend)
        return init(backend, *args, **kwargs)

    tdist.init_process_group = recording_init
    from train.training.run import prepare, run_training

    values = {"env": "othello", "preset": sizes.preset, "batch_size": sizes.batch_size,
              "steps": sizes.torchrun_steps, "ema": True, "eval_every": 0, "play_games": 0,
              "eval_size": 64, "device": device_name, "out": str(out)}
    cfg, task, model_cfg, ckpt = prepare(values, dist_info=d)
    summary = run_training(cfg, task, model_cfg, ckpt, dist_info=d, progress=False)
    print(json.dumps({"backend": backends[0] if backends else None, "world_size": d.world_size,
                      "step": summary["step"], "params_in_sync": summary["params_in_sync"]}))


def eval_cli(sizes: Sizes, device: torch.device, run: str) -> dict:
    """``lgagent eval --json`` of ``run`` on the device."""
    return _json_command([LGAGENT, "eval", run, "--device", device.type, "--eval-size",
                          sizes.eval_size, "--json"], sizes.timeout_s, _eval_summary)


def play_cli(sizes: Sizes, device: torch.device, run: str) -> dict:
    """``lgagent play --json`` of ``run`` against the random player, on the device."""
    return _json_command([LGAGENT, "play", run, "--device", device.type, "--games",
                          sizes.play_games, "--json"], sizes.timeout_s, _play_summary)


def _json_command(cmd: list, timeout: int, pick) -> dict:
    res = _subprocess(cmd, timeout)
    stdout = res.pop("stdout", "")
    if res["ok"]:
        try:
            res.update(pick(json.loads(stdout)))
        except (ValueError, KeyError, TypeError) as e:
            res.update(ok=False, error=f"unexpected JSON: {e}")
    return res


def _eval_summary(out: dict) -> dict:
    raw = out["eval"]["raw"]["seen"]
    return {"raw_seen_top1_err": raw["top1_err"], "weights": sorted(out["eval"])}


def _play_summary(out: dict) -> dict:
    return {"games": out["games"], "score": {w: r["score"] for w, r in out["play"].items()}}


def device_info(device: torch.device) -> dict:
    info = {"device": device.type, "torch": torch.__version__, "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(gpu=p.name, gpu_memory_bytes=p.total_memory,
                    capability=f"{p.major}.{p.minor}", cuda=torch.version.cuda)
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes on the CPU (the whole script in well under a minute)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="default: cuda, or cpu with --smoke")
    p.add_argument("--steps", type=int, default=None, help="timed training steps per case")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per step")
    p.add_argument("--peak-flops", type=float, default=None,
                   help="the device's peak FLOP/s for MFU (default: PEAK_BF16_FLOPS by name)")
    p.add_argument("--no-compile", action="store_true",
                   help="skip the torch.compile case (skipped by default with --smoke)")
    p.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    p.add_argument("--ddp-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    for name in ("steps", "batch_size"):
        v = getattr(args, name)
        if v is not None:
            if v < 1:
                p.error(f"--{name.replace('_', '-')} must be at least 1, got {v}")
            sizes = Sizes(**{**sizes.__dict__, name: v})
    if args.peak_flops is not None and not args.peak_flops > 0:
        p.error(f"--peak-flops must be positive, got {args.peak_flops}")
    device_name = args.device or ("cpu" if args.smoke else "cuda")
    if device_name == "cuda" and not torch.cuda.is_available():
        p.error("no CUDA device is available (run with --smoke for the CPU check)")
    if args.ddp_child:
        ddp_child(sizes, device_name, Path(args.out))
        return 0
    device = resolve_device(device_name, Dist())
    t_start = time.perf_counter()
    peak, peak_source = peak_flops(device, args.peak_flops)
    result = {"benchmark": "gpu", "smoke": args.smoke, **device_info(device),
              "peak_flops": peak, "peak_flops_source": peak_source,
              "flops_formula": "(6 * N_linear + 12 * n_layer * n_embd * T) * batch_size * T"}
    with contextlib.ExitStack() as stack:
        if args.out:
            root = Path(args.out)
            root.mkdir(parents=True, exist_ok=True)
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lgagent-gpu-")))

        def part(key, fn, *fn_args):
            """One part into result[key]; an exception there is its error, not the script's end
            (GPU time is short: the other parts still run). With --out, gpu.json so far."""
            try:
                result[key] = fn(*fn_args)
            except Exception as e:  # noqa: BLE001 (reported, with its traceback on stderr)
                traceback.print_exc()
                text = str(e).strip()
                first = text.splitlines()[0][:300] if text else ""
                result[key] = {"ok": False, "error": f"{type(e).__name__}: {first}"}
            if args.out:
                (root / "gpu.json").write_text(json.dumps(result, indent=2))

        part("train_eager", train_case, sizes, device, False, peak)
        result["averaging"] = result["train_eager"].pop(
            "averaging", {"ok": False, "error": "the eager case failed"})
        if args.no_compile or (args.smoke and args.device != "cuda"):
            result["train_compile"] = {
                "ok": True, "skipped": "--no-compile" if args.no_compile else
                "--smoke on the CPU (tests/train/cli/test_train.py compiles for real)"}
        else:
            part("train_compile", train_case, sizes, device, True, peak)
        result["train"] = {"eager": result.pop("train_eager"),
                           "compile": result.pop("train_compile")}
        part("resume", resume_check, sizes, device, root)
        if args.smoke and device.type == "cpu":  # two more processes importing torch
            result["torchrun"] = {"ok": True, "skipped": "--smoke on the CPU: tests/train/training/test_distributed.py "
                                  "runs torchrun ... --no-python lgagent train (gloo)"}
        else:
            part("torchrun", torchrun_lgagent, sizes, device, root)
        part("torchrun_ddp", torchrun_ddp, sizes, device, root, args.smoke)
        run = result["resume"].get("run")
        if run and (Path(run) / "checkpoint.pt").is_file():
            part("eval", eval_cli, sizes, device, run)
            part("play", play_cli, sizes, device, run)
        else:
            result["eval"] = result["play"] = {"ok": False, "error": "no run to evaluate (the "
                                               "resume check failed)"}
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    parts = ("averaging", "resume", "torchrun", "torchrun_ddp", "eval", "play")
    result["ok"] = (all(c["ok"] for c in result["train"].values())
                    and all(result[k].get("ok", True) for k in parts))
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
