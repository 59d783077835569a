"""The training loop: AdamW, warmup + cosine, EMA/BEMA, evaluation, checkpoints, TensorBoard, DDP.

One process or several (``torchrun --nproc_per_node K``: DistributedDataParallel,
gloo on CPU, NCCL on GPU). Every rank draws its own data stream
(``make_task(..., rank=rank)``); only rank 0 evaluates and writes.

RUN_DIR (``out``) holds

* ``checkpoint.pt``: the latest state, format ``lgagent-checkpoint`` version 1
  (docs/ARCHITECTURE.md "Checkpoint"): model, optimizer, scheduler, ``"ema"``
  and ``"bema"`` states, step, RNG states (torch CPU/CUDA, NumPy, Python; one
  entry per rank under ``"rng_ranks"``), the data stream (``"data"``; every
  rank's under ``"data_ranks"``; all ranks draw the same number of batches, so
  any rank resumes from rank 0's position in its own stream), the full
  config and the model config;
* ``config.toml``: the resolved run config (reusable with ``--config``);
* TensorBoard events: ``loss/train``, ``loss/grad_norm``, ``charts/lr``,
  ``charts/tokens_per_s``, ``charts/data_share`` (the share of step time spent
  producing data), ``eval/<raw|ema|bema>/<seen|unseen>/<metric>`` and
  ``eval/<weights>/play/<win|draw|loss|first_choice_legal>``; the config as a
  text table and the hyperparameters (HParams tab) at the start.

Every file is written atomically (temporary file + rename), so a kill at any
moment leaves the previous checkpoint intact. SIGINT (Ctrl-C) and SIGTERM
finish the current step (under DDP: up to the next multiple of ``log_every``,
where the ranks agree), save a checkpoint and stop; a second Ctrl-C aborts at
once (the last saved checkpoint is still intact).

Exact resume: on the CPU, a run stopped at step k and resumed reaches the
same weights, bit for bit, as an uninterrupted run (same world size and
thread count). GPU kernels are not bitwise deterministic in general.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from train import evaluate as ev
from train.atomic import atomic_path, atomic_write_text
from train.config import MODEL_FIELDS, RunConfig, model_overrides, to_toml

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.toml"
FORMAT = "lgagent-checkpoint"
VERSION = 1
CHECKPOINT_KEYS = ("format", "version", "step", "config", "model_config", "model", "optimizer",
                   "scheduler", "ema", "bema", "rng", "data")
# Metrics shown in TensorBoard's HParams tab (the run's headline numbers).
HPARAM_METRICS = ("top1_err", "sep_acc", "loss")


# ------------------------------------------------------------------------------------------
# Processes and devices


@dataclass(frozen=True)
class Dist:
    """This process's place in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_from_env() -> Dist:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK (a single process when absent)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as e:
        raise ValueError(f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {e}") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"bad torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return Dist(rank=rank, world_size=world, local_rank=local)


def resolve_device(pref: str, d: Dist) -> torch.device:
    """``auto``: CUDA when available, else CPU; one GPU per local rank. ValueError if none."""
    if pref not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {pref!r}; choose from auto, cpu, cuda")
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    n = torch.cuda.device_count()
    if d.local_rank >= n:
        raise ValueError(f"local rank {d.local_rank} needs GPU {d.local_rank}, only {n} visible")
    return torch.device("cuda", d.local_rank)


def init_distributed(d: Dist, device: torch.device) -> None:
    """Start the process group (NCCL on GPU, gloo on CPU) when running under torchrun."""
    if d.enabled and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                rank=d.rank, world_size=d.world_size)


def barrier(d: Dist) -> None:
    """Wait for every rank (no-op for one process)."""
    if d.enabled and dist.is_initialized():
        dist.barrier()


def abandon_distributed(d: Dist) -> None:
    """Tear the process group down without waiting for the other ranks (after an error)."""
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def shutdown_distributed(d: Dist) -> None:
    """Barrier, then tear the process group down."""
    if d.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------
# Building the run: task, model config


def build(cfg: RunConfig, rank: int = 0):
    """Make the task and model config of a validated, resolved config; ValueError on misfit.

    Returns ``(cfg, task, model_cfg)`` where ``cfg`` has the model fields
    (``n_layer`` ... ``pos``), ``train_max_len`` and ``vocab_size`` filled with
    the values actually used. Nothing is written.
    """
    from agents.model import preset
    from train.tasks import make_task

    if cfg.env == "setcomp":
        task = make_task("setcomp", vocab_size=cfg.vocab_size, seed=cfg.seed, rank=rank)
    else:
        task = make_task("othello", data=cfg.data, seed=cfg.seed, rank=rank)
    model_cfg = preset(cfg.preset, vocab_size=task.vocab_size, block_size=task.block_size,
                       **model_overrides(cfg))
    L = task.block_size if cfg.train_max_len is None else cfg.train_max_len
    if L > task.block_size:
        raise ValueError(f"--train-max-len {L} exceeds the block size {task.block_size} "
                         f"of {cfg.env}")
    cfg = dataclasses.replace(
        cfg, train_max_len=L, vocab_size=cfg.vocab_size if cfg.env == "setcomp" else None,
        **{k: getattr(model_cfg, k) for k in MODEL_FIELDS},
    )
    return cfg, task, model_cfg


def lr_factor(step: int, *, warmup: int, steps: int, min_ratio: float) -> float:
    """Learning-rate multiplier for optimizer step ``step`` (0-based).

    Linear warmup over ``warmup`` steps (1/warmup ... 1), then cosine decay
    from 1 to ``min_ratio`` at step ``steps``.
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ------------------------------------------------------------------------------------------
# RNG state and checkpoints


def capture_rng() -> dict:
    """This process's RNG states as plain types and tensors (torch.load(weights_only) safe)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }


def restore_rng(state: dict) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(path, state: dict) -> None:
    """``torch.save`` into a temporary file next to ``path``, then rename (atomic)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load and check an lgagent checkpoint with ``torch.load(weights_only=True)``.

    ValueError, one line, for a missing, unreadable, corrupted or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, not a torch file, pickled foreign objects
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path} is not a readable checkpoint (corrupted or foreign file): "
                         f"{msg[:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not an lgagent checkpoint (no format {FORMAT!r} marker)")
    if ckpt.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {ckpt.get('version')!r} is not supported "
                         f"(this lgagent reads version {VERSION})")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return ckpt


def model_from_checkpoint(ckpt, weights: str = "raw", map_location="cpu") -> torch.nn.Module:
    """A GPT in eval mode holding the ``raw``, ``ema`` or ``bema`` weights of a checkpoint.

    ``ckpt`` is a path (checked by :func:`load_checkpoint`) or a dict from it; the
    model is built by :func:`agents.policies.model_from_checkpoint`. ValueError if
    those weights are not in the checkpoint or do not fit its model config.
    """
    from agents.policies import model_from_checkpoint as build_model

    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt, map_location=map_location)
    return build_model(ckpt, weights, map_location)


# ------------------------------------------------------------------------------------------
# Stopping on signals


class StopFlag:
    """SIGINT/SIGTERM set a flag checked between steps; a second SIGINT aborts at once."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


# ------------------------------------------------------------------------------------------
# The trainer


class Trainer:
    """One training run. ``Trainer(cfg, task, model_cfg, out).train()``.

    ``cfg`` comes from :func:`build` (validated and resolved). ``resume`` is a
    checkpoint dict from :func:`load_checkpoint` to continue from. Only rank 0
    writes to ``out``; ``out`` must already be prepared (empty or cleared).
    """

    def __init__(self, cfg: RunConfig, task, model_cfg, out, *, dist_info: Dist | None = None,
                 device: torch.device | None = None, resume: dict | None = None,
                 progress: bool = True):
        from agents.model import GPT, param_groups

        self.cfg = cfg
        self.task = task
        self.out = Path(out)
        self.d = dist_info or Dist()
        self.device = device or torch.device("cpu")
        self.progress = progress
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)

        # Same init on every rank (DDP also broadcasts rank 0's weights).
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        self.model = GPT(model_cfg).to(self.device)
        if self.d.rank > 0:  # dropout masks differ across ranks
            torch.manual_seed(cfg.seed + 1_000_003 * self.d.rank)
        self.optimizer = torch.optim.AdamW(
            param_groups(self.model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
            fused=self.device.type == "cuda" or None,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            partial(lr_factor, warmup=cfg.warmup, steps=cfg.steps, min_ratio=cfg.min_lr_ratio),
        )
        self.ema = self.bema = None
        if cfg.ema or cfg.bema:
            from agents import BEMA, EMA
            if cfg.ema:
                self.ema = EMA(self.model, decay=cfg.ema_decay)
            if cfg.bema:
                self.bema = BEMA(self.model, ema_power=cfg.bema_ema_power,
                                 bias_power=cfg.bema_bias_power, lag=cfg.bema_lag,
                                 multiplier=cfg.bema_multiplier, burn_in=cfg.bema_burn_in,
                                 update_every=cfg.bema_update_every)
        self.step = 0
        if resume is not None:
            self._load(resume)

        fwd = self.model
        if cfg.compile:
            fwd = torch.compile(fwd)
        if self.d.enabled:
            fwd = DDP(fwd, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.fwd = fwd
        self.autocast = partial(ev.autocast, self.device)
        self.writer = None
        self._eval_batch = None
        if self.d.is_main:  # built before anything is written: a batch too big is bad input
            try:
                self._eval_batch = task.eval_batch(cfg.eval_size, seed=cfg.eval_seed)
            except MemoryError:
                raise ValueError(f"--eval-size {cfg.eval_size}: the held-out batch does not "
                                 "fit in memory") from None

    # -- state ------------------------------------------------------------------------------

    def _load(self, ckpt: dict) -> None:
        """Restore a checkpoint; ValueError (one line) when a part does not fit this run."""
        parts = [("model", self.model), ("optimizer", self.optimizer),
                 ("scheduler", self.scheduler)]
        for name in ("ema", "bema"):
            avg = getattr(self, name)
            if avg is not None:
                if ckpt[name] is None:
                    raise ValueError(f"the checkpoint has no {name} state")
                parts.append((name, avg))
        for name, obj in parts:
            try:
                obj.load_state_dict(ckpt[name])
            except (RuntimeError, KeyError, TypeError, AttributeError, IndexError,
                    ValueError) as e:  # a corrupted or hand-edited checkpoint
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ValueError(f"the checkpoint's {name} state does not fit this run: "
                                 f"{msg[:200]}") from None
        self.step = int(ckpt["step"])
        self.task.load_state_dict(ckpt["data"])
        ranks = ckpt.get("rng_ranks") or [ckpt["rng"]]
        if self.d.rank < len(ranks):
            restore_rng(ranks[self.d.rank])
        # a rank beyond the saved world size keeps its fresh per-rank seed (not bitwise exact)

    def state_dict(self) -> dict | None:
        """The checkpoint dict on rank 0 (None on other ranks). Collective under DDP."""
        rng, data = capture_rng(), self.task.state_dict()
        rng_ranks, data_ranks = [rng], [data]
        if self.d.enabled:
            gathered = [None] * self.d.world_size
            dist.all_gather_object(gathered, (_to_cpu(rng), data))
            rng_ranks, data_ranks = [g[0] for g in gathered], [g[1] for g in gathered]
        if not self.d.is_main:
            return None
        return {
            "format": FORMAT, "version": VERSION, "step": self.step,
            "config": self.cfg.saved_dict(),
            "model_config": dataclasses.asdict(self.model.config),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "bema": self.bema.state_dict() if self.bema is not None else None,
            "rng": rng, "rng_ranks": rng_ranks,
            "data": data, "data_ranks": data_ranks,
        }

    def save(self) -> None:
        """Write checkpoint.pt atomically (rank 0; every rank must call it under DDP)."""
        state = self.state_dict()
        if state is not None:
            save_checkpoint(self.out / CHECKPOINT, state)

    # -- evaluation -------------------------------------------------------------------------

    def averaged(self) -> dict:
        """``{"raw": model, "ema": ..., "bema": ...}`` for the weights this run keeps."""
        models = {"raw": self.model}
        if self.ema is not None:
            models["ema"] = self.ema.module
        if self.bema is not None:
            models["bema"] = self.bema.module
        return models

    def evaluate(self) -> dict:
        """Legality metrics of every kept weights on the fixed held-out batch (rank 0)."""
        return ev.evaluate_weights(self.averaged(), self._eval_batch, pad_id=self.task.pad_id,
                                   train_max_len=self.cfg.train_max_len,
                                   chunk_size=self.cfg.batch_size, device=self.device)

    def play(self) -> dict:
        """Games against a random player for every kept weights (Othello only)."""
        return {name: ev.play_vs_random(m, self.cfg.play_games, seed=self.cfg.eval_seed)
                for name, m in self.averaged().items()}

    def _log_eval(self, results: dict) -> None:
        for tag, v in ev.flat_scalars(results).items():
            self.writer.add_scalar(tag, v, self.step)
        parts = []
        for w, splits in results.items():
            for s, ms in splits.items():
                if "top1_err" in ms:
                    parts.append(f"{w}/{s} top1_err {ms['top1_err']:.4f} "
                                 f"sep_acc {ms['sep_acc']:.3f}")
        tqdm.write(f"step {self.step}: " + "; ".join(parts))

    # -- TensorBoard ------------------------------------------------------------------------

    def _open_writer(self, fresh: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        # events logged after the checkpoint's step (by the interrupted run) are discarded
        self.writer = SummaryWriter(log_dir=str(self.out),
                                    purge_step=None if fresh else self.step + 1)
        if not fresh:
            return
        saved = self.cfg.saved_dict()
        table = "\n".join(f"|{k}|{v}|" for k, v in saved.items())
        self.writer.add_text("config", f"|param|value|\n|-|-|\n{table}", 0)
        # add_hparams() always writes a separate sub-run; write its summaries into this run.
        hp = {k: v for k, v in saved.items() if isinstance(v, (bool, int, float, str))}
        metrics = {f"eval/{w}/{s}/{m}": math.nan for w in self.averaged()
                   for s in (("seen", "unseen") if self.cfg.train_max_len < self.task.block_size
                             else ("seen",))
                   for m in HPARAM_METRICS}
        exp, ssi, sei = hparams(hp, metrics)
        self._hparams_end = sei
        fw = self.writer.file_writer
        fw.add_summary(exp)
        fw.add_summary(ssi)

    # -- the loop ---------------------------------------------------------------------------

    def train(self) -> dict:
        """Run until ``cfg.steps`` (or ``cfg.stop_at``, or a signal). Returns a summary dict.

        The summary: ``step``, ``steps``, ``finished`` (reached ``cfg.steps``),
        ``interrupted`` (signal name or None), ``seconds``, ``tokens_per_s``,
        ``eval`` (last legality metrics, rank 0) and ``play`` (Othello games, rank 0).
        """
        cfg, d = self.cfg, self.d
        target = cfg.stop_at if cfg.stop_at is not None else cfg.steps
        fresh = self.step == 0
        self._hparams_end = None
        if d.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out / CONFIG, to_toml(cfg.saved_dict()))
            self._open_writer(fresh)
        tokens_per_step = cfg.batch_size * cfg.train_max_len * d.world_size
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not (self.progress and d.is_main),
                   dynamic_ncols=True, desc=f"{cfg.env}/{cfg.preset}")
        summary = {"step": self.step, "steps": cfg.steps, "interrupted": None, "eval": None,
                   "play": None}
        last_eval_step = None
        t_start = time.perf_counter()
        t_log, steps_since_log, data_time = t_start, 0, 0.0
        loss_sum = torch.zeros((), device=self.device)
        gnorm_sum = torch.zeros((), device=self.device)
        stop_signal = None
        results = None
        self.model.train()
        try:
            with StopFlag() as flag:
                while self.step < target:
                    t0 = time.perf_counter()
                    batch = self.task.batch(cfg.batch_size, max_len=cfg.train_max_len)
                    data_time += time.perf_counter() - t0
                    batch = batch.to(self.device, non_blocking=True)
                    loss, gnorm = self._train_step(batch)
                    self.step += 1
                    steps_since_log += 1
                    loss_sum += loss
                    gnorm_sum += gnorm
                    bar.update(1)

                    if self.step % cfg.log_every == 0 or self.step == target:
                        if self.device.type == "cuda":
                            torch.cuda.synchronize()
                        now = time.perf_counter()
                        if d.enabled:  # the mean over every rank's data
                            dist.all_reduce(loss_sum, op=dist.ReduceOp.SUM)
                            loss_sum /= d.world_size
                        mean_loss = float(loss_sum) / steps_since_log
                        tok_s = tokens_per_step * steps_since_log / max(now - t_log, 1e-9)
                        if d.is_main:
                            w = self.writer
                            w.add_scalar("loss/train", mean_loss, self.step)
                            w.add_scalar("loss/grad_norm", float(gnorm_sum) / steps_since_log,
                                         self.step)
                            w.add_scalar("charts/lr", self.scheduler.get_last_lr()[0], self.step)
                            w.add_scalar("charts/tokens_per_s", tok_s, self.step)
                            w.add_scalar("charts/data_share", data_time / max(now - t_log, 1e-9),
                                         self.step)
                            bar.set_postfix(loss=f"{mean_loss:.4f}", tok_s=f"{tok_s:,.0f}",
                                            refresh=False)
                        t_log, steps_since_log, data_time = now, 0, 0.0
                        loss_sum.zero_()
                        gnorm_sum.zero_()

                    if cfg.eval_every and self.step % cfg.eval_every == 0 and d.is_main:
                        results = self.evaluate()
                        self._log_eval(results)
                        last_eval_step = self.step
                    if cfg.ckpt_every and self.step % cfg.ckpt_every == 0 and self.step < target:
                        self.save()
                    # under DDP the ranks agree on stopping at log steps only (a collective
                    # every step would stall the GPU pipeline)
                    if not d.enabled or self.step % cfg.log_every == 0:
                        stop_signal = self._should_stop(flag)
                        if stop_signal:
                            break
        except BaseException:
            if self.writer is not None:  # keep what was logged; a resume purges what follows
                self.writer.close()
            raise
        finally:
            bar.close()
        finished = self.step >= cfg.steps
        if d.is_main and last_eval_step != self.step:
            results = self.evaluate()
            self._log_eval(results)
        self.save()
        if d.is_main:
            summary["eval"] = results
            if finished and cfg.env == "othello" and cfg.play_games > 0:
                summary["play"] = self.play()
                for w, r in summary["play"].items():
                    for k in ("win", "draw", "loss", "first_choice_legal"):
                        self.writer.add_scalar(f"eval/{w}/play/{k}", r[k], self.step)
            if finished and self._hparams_end is not None:
                self.writer.file_writer.add_summary(self._hparams_end)
            self.writer.flush()
            self.writer.close()
        seconds = time.perf_counter() - t_start
        done = self.step - summary["step"]  # steps run by this invocation
        summary.update(step=self.step, finished=finished, seconds=seconds,
                       interrupted=signal.Signals(stop_signal).name if stop_signal else None,
                       tokens_per_s=tokens_per_step * done / max(seconds, 1e-9))
        summary["params_in_sync"] = self.check_in_sync()
        return summary

    def _train_step(self, batch):
        from agents.losses import loss as loss_fn

        with self.autocast():
            logits = self.fwd(batch.tokens)
        loss = loss_fn(self.cfg.loss, logits, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        else:
            gnorm = torch.nn.utils.get_total_norm([p.grad for p in self.model.parameters()
                                                   if p.grad is not None])
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        if self.bema is not None:
            self.bema.update(self.model)
        return loss.detach(), gnorm.detach()

    def _should_stop(self, flag: StopFlag):
        """The signal that stops the run, agreed by all ranks (max over ranks), or None."""
        sig = flag.signum or 0
        if self.d.enabled:
            t = torch.tensor([sig], device=self.device if self.device.type == "cuda" else "cpu")
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            sig = int(t.item())
        return sig or None

    def check_in_sync(self) -> bool | None:
        """Under DDP: True when every rank holds bitwise-identical parameters (None otherwise)."""
        if not self.d.enabled:
            return None
        flat = torch.cat([p.detach().reshape(-1).double().cpu() for p in self.model.parameters()])
        digest = torch.tensor([float(flat.sum()), float((flat * flat).sum()),
                               float(flat[::7].sum())], dtype=torch.float64)
        gathered = [None] * self.d.world_size
        dist.all_gather_object(gathered, digest)
        return all(torch.equal(g, gathered[0]) for g in gathered)


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj
