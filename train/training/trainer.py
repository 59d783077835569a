"""The training loop: a step on a fresh batch, EMA/BEMA, evaluation, checkpoints, TensorBoard.

The parts come from :mod:`train.training.assemble`, the DDP helpers from
:mod:`train.training.distributed`, the RNG capture from :mod:`train.training.rng`; this module
runs the steps and writes the run. One process or several (``torchrun
--nproc_per_node K --no-python lgagent train ...``: DistributedDataParallel,
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
* TensorBoard events: ``loss/train``, ``charts/grad_norm``, ``charts/lr``,
  ``charts/tokens_per_s``, ``charts/data_share`` (the share of step time spent
  waiting for the batch), ``eval/<raw|ema|bema>/<seen|unseen>/<metric>`` and
  ``eval/<weights>/play/<win|draw|loss|score|first_choice_legal>`` (rates); the config as a
  text table and the hyperparameters (HParams tab) at the start.

Data: with ``prefetch`` > 0 (the default, 2) the batches are built ahead in a
background thread (:mod:`train.training.prefetch`; pinned memory on CUDA, copied with
``non_blocking=True``): the same batches in the same order, and the checkpoint
holds the stream position after the last batch a step used, not where the
producer had got to. ``prefetch = 0`` builds each batch inside the step. A
failure while building a batch raises :class:`train.training.prefetch.DataFailed` (one
line); the producer thread never outlives :meth:`Trainer.train`.

Every file is written atomically (temporary file + rename), so a kill at any
moment leaves the previous checkpoint intact (and the next run removes the
temporary file a SIGKILL left). SIGINT (Ctrl-C) and SIGTERM finish the current
step (under DDP: up to the next multiple of ``log_every``, where the ranks
agree), save a checkpoint and stop; a second Ctrl-C aborts at once (the last
saved checkpoint is still intact). The last step is saved before the final
evaluation and play, so a signal during those stops at once (exit 130/143).
A checkpoint that cannot be written (a full disk) raises :class:`WriteFailed`
with one line; the checkpoint carries a checksum of its weights.

Exact resume: on the CPU, a run stopped at step k and resumed reaches the
same weights, bit for bit, as an uninterrupted run (same world size and
thread count). GPU kernels are not bitwise deterministic in general.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import shutil
import signal
import time
from functools import partial
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from agents import snapshots
from agents.checkpoint import CHECKPOINT, FORMAT, VERSION, averages_to_save, checksum, first_line
from agents.losses import loss as loss_fn
from train.analysis import evaluate as ev
from train.atomic import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    human_bytes,
    nearest_existing,
    remove_stale_temps,
)
from train.progress import progress_bar
from train.signals import handling
from train.training.assemble import assemble, restore
from train.training.config import RunConfig, to_toml
from train.training.distributed import Dist, gather, max_over_ranks, mean_over_ranks, params_in_sync
from train.training.prefetch import DataFailed, Prefetcher
from train.training.rng import capture_rng

CONFIG = "config.toml"
# Metrics shown in TensorBoard's HParams tab (the run's headline numbers).
HPARAM_METRICS = ("top1_err", "sep_acc", "loss")


def save_checkpoint(path, state: dict, previous_step: int | None = None) -> None:
    """``torch.save`` into a temporary file next to ``path``, then rename (atomic).

    The writing side of the format that :mod:`agents.checkpoint` reads. A failed
    write (a full disk, a vanished directory) raises :class:`WriteFailed` with one
    line that says the previous checkpoint (at ``previous_step``) is intact.
    """
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except (OSError, RuntimeError) as e:
        # torch's zip writer reports a full disk as "RuntimeError: ... unexpected pos": tell it
        # by the space left (the temporary file is gone by now)
        full = getattr(e, "errno", None) == errno.ENOSPC or (
            Path(path).parent.is_dir()
            and shutil.disk_usage(Path(path).parent).free < _tensor_bytes(state))
        if not full and not isinstance(e, OSError):
            raise
        raise WriteFailed.of(e, path, previous_step, full) from None


class WriteFailed(Exception):
    """A file of the run could not be written; the message is one line."""

    @classmethod
    def of(cls, e: BaseException, path, previous_step: int | None,
           full: bool = False) -> "WriteFailed":
        full = full or getattr(e, "errno", None) == errno.ENOSPC
        what = "no space left on device" if full else (
            getattr(e, "strerror", None) or first_line(e))
        kept = (f"the previous checkpoint at step {previous_step} is intact"
                if previous_step is not None else "no checkpoint was written")
        return cls(f"{what} writing {path}; {kept}")


def _tensor_bytes(obj) -> int:
    """Bytes of every tensor inside nested dicts/lists (a checkpoint's size, near enough)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def checkpoint_bytes(model, n_averages: int) -> int:
    """An upper estimate of checkpoint.pt's size: the model's tensors, AdamW's two moments,
    one copy per average (EMA/BEMA keep a module; BEMA also theta_0), plus 1 MiB of the rest."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return weights * (3 + 2 * n_averages) + (1 << 20)


class StopFlag:
    """SIGINT/SIGTERM set a flag checked between steps; a second SIGINT aborts at once.

    After :meth:`abort_on_signal` (the checkpoint is saved, what follows is evaluation and
    play) any signal raises :class:`Stopped` at once instead: nothing is left to save.
    """

    def __init__(self):
        self.signum = None
        self.abort = False
        self._handling = handling(self._handle)

    def __enter__(self):
        self._handling.__enter__()
        return self

    def _handle(self, signum, frame):
        if self.abort:
            self.signum = self.signum or signum
            raise Stopped(signum)
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def abort_on_signal(self, pending: bool = True) -> None:
        """From now on a signal raises :class:`Stopped`; at once if one came already and
        ``pending`` (it was not the one that ended the loop)."""
        self.abort = True
        if self.signum and pending:
            raise Stopped(self.signum)

    def __exit__(self, *exc):
        self._handling.__exit__(*exc)
        return False


class Stopped(Exception):
    """A signal during the end-of-run evaluation or play (the checkpoint is already saved)."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Trainer:
    """One training run. ``Trainer(cfg, task, model_cfg, out).train()``.

    ``cfg`` comes from :func:`train.training.assemble.build` (validated and resolved).
    ``resume`` is a checkpoint dict from :func:`agents.checkpoint.load` to
    continue from (ValueError, one line, when a part does not fit). Only rank 0
    writes to ``out``; ``out`` must already be prepared (empty or cleared).
    """

    def __init__(self, cfg: RunConfig, task, model_cfg, out, *, dist_info: Dist | None = None,
                 device: torch.device | None = None, resume: dict | None = None,
                 progress: bool = True):
        self.cfg, self.task, self.out = cfg, task, Path(out)
        # randomized positions (Ruoss et al. 2023): each batch's own, from the data stream
        self.pos_range = model_cfg.pos_range  # None for every other scheme
        self.d = dist_info or Dist()
        self.device = device or torch.device("cpu")
        self.progress = progress
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.parts = assemble(cfg, model_cfg, self.device, self.d.rank, resume)
        self.model, self.optimizer = self.parts.model, self.parts.optimizer
        self.scheduler, self.averages = self.parts.scheduler, self.parts.averages
        self.step = 0 if resume is None else restore(self.parts, resume, task, self.d.rank)
        self.saved_step = None if resume is None else self.step  # the checkpoint on disk
        # named weights that lgagent average --save added to the checkpoint: kept on resume
        self.saved_averages = None if resume is None else resume.get("saved_averages")
        if self.d.is_main:  # refuse a disk that cannot hold a checkpoint before writing anything
            self._check_disk_space()

        fwd = torch.compile(self.model) if cfg.compile else self.model
        if self.d.enabled:
            fwd = DDP(fwd, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.fwd = fwd
        self.autocast = partial(ev.autocast, self.device)
        self.writer = None
        self.tracker = None  # --track: train.training.tracking.WandbSink (rank 0)
        self._prefetch = None  # the batch producer of a running train() (train.training.prefetch)
        self._hparams_end = None
        self._eval_batch = None
        if self.d.is_main:  # built before anything is written: a batch too big is bad input
            try:
                self._eval_batch = task.eval_batch(cfg.eval_size, seed=cfg.eval_seed)
            except MemoryError:
                raise ValueError(f"--eval-size {cfg.eval_size}: the held-out batch does not "
                                 "fit in memory") from None

    # -- one step ---------------------------------------------------------------------------

    def train_step(self, batch):
        """Forward, loss, backward, clip, AdamW, schedule, EMA/BEMA. Returns (loss, grad norm)."""
        with self.autocast():
            logits = self.fwd(batch.tokens, pos=batch.pos)  # pos: randomized schemes only
        loss = loss_fn(self.cfg.loss, logits, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = self.model.parameters()
        if self.cfg.grad_clip > 0:
            gnorm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        else:
            gnorm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        self.optimizer.step()
        self.scheduler.step()
        for avg in self.averages.values():  # EMA(s), BEMA
            avg.update(self.model)
        return loss.detach(), gnorm.detach()

    # -- the loop ---------------------------------------------------------------------------

    def train(self) -> dict:
        """Run until ``cfg.steps`` (or ``cfg.stop_at``, or a signal). Returns a summary dict.

        The summary: ``step``, ``steps``, ``finished`` (reached ``cfg.steps``),
        ``interrupted`` (signal name or None), ``seconds``, ``tokens_per_s``,
        ``eval`` (last legality metrics, rank 0), ``play`` (Othello games, rank 0)
        and ``params_in_sync`` (DDP: every rank holds the same weights; else None).
        """
        cfg, d = self.cfg, self.d
        target = cfg.stop_at if cfg.stop_at is not None else cfg.steps
        first_step, results, evaluated_at, stop = self.step, None, None, None
        if d.is_main:
            self._open_logs(fresh=self.step == 0)
        # on a terminal tqdm's bar; in a pipe or a log file a plain line every 10% (>= 10 s apart)
        bar = progress_bar(total=cfg.steps, initial=self.step,
                           disable=not (self.progress and d.is_main), dynamic_ncols=True,
                           desc=f"{cfg.env}/{cfg.preset}")
        t_start = time.perf_counter()
        self._new_window(t_start)
        self.model.train()
        play, finished = None, False
        with StopFlag() as flag:
            try:
                self._open_data(target - self.step)
                while self.step < target:
                    t0 = time.perf_counter()
                    batch = self._next_batch()
                    self._window["data_s"] += time.perf_counter() - t0  # what the step waited
                    loss, gnorm = self.train_step(batch.to(self.device, non_blocking=True))
                    self.step += 1
                    self._window["loss"] += loss
                    self._window["gnorm"] += gnorm
                    self._window["steps"] += 1
                    bar.update(1)

                    if self.step % cfg.log_every == 0 or self.step == target:
                        self._log_train(bar)
                    if cfg.eval_every and self.step % cfg.eval_every == 0 and d.is_main:
                        results, evaluated_at = self.evaluate(), self.step
                        self._log_eval(results)
                    if d.is_main and self.snapshot_due(self.step):
                        self.write_snapshot()
                    if cfg.ckpt_every and self.step % cfg.ckpt_every == 0 and self.step < target:
                        self.save()
                    # under DDP the ranks agree on stopping at log steps only (a collective
                    # every step would stall the GPU pipeline)
                    if not d.enabled or self.step % cfg.log_every == 0:
                        stop = max_over_ranks(flag.signum or 0, d, self.device) or None
                        if stop:
                            break
                self._close_data()  # the producer stops; the task is back at the last batch used
                # the last steps are saved before the evaluation and play that may take long:
                # a signal during those finds nothing left to save
                self.save()
                finished = self.step >= cfg.steps
                try:
                    flag.abort_on_signal(pending=not stop)
                    if d.is_main and evaluated_at != self.step:
                        results = self.evaluate()
                        self._log_eval(results)
                    if d.is_main and results is not None:
                        self._log_figure(results)
                    play = self.play() if finished and d.is_main else None
                except Stopped as e:  # the run is saved: report the signal, skip the rest
                    stop = stop or e.signum
                    if evaluated_at != self.step:
                        results = None
                    play = None
                if d.is_main:
                    self._close_logs(play, finished)
            except BaseException:
                self._close_data()  # no producer thread outlives the loop (Ctrl-C, errors)
                if self.writer is not None:  # keep what was logged; a resume purges what follows
                    self.writer.close()
                if self.tracker is not None:
                    self.tracker.finish(exit_code=1)
                raise
            finally:
                bar.close()
        seconds = time.perf_counter() - t_start
        tokens = self._tokens_per_step() * (self.step - first_step)  # by this invocation
        return {"step": self.step, "steps": cfg.steps, "finished": finished,
                "interrupted": signal.Signals(stop).name if stop else None,
                "seconds": seconds, "tokens_per_s": tokens / max(seconds, 1e-9),
                "eval": results if d.is_main else None, "play": play,
                "params_in_sync": params_in_sync(self.model, d)}

    # -- the data stream (synchronous, or built ahead by train.training.prefetch) ---------------------

    def _open_data(self, count: int) -> None:
        """Start building the next ``count`` batches in the background (``cfg.prefetch`` > 0)."""
        self._prefetch = None
        if self.cfg.prefetch > 0 and count > 0:
            self._prefetch = Prefetcher(self.task, self.cfg.batch_size, self.cfg.train_max_len,
                                        depth=self.cfg.prefetch, limit=count,
                                        pin_memory=self.device.type == "cuda",
                                        pos_range=self.pos_range)

    def _next_batch(self):
        """The next training batch (on the CPU; pinned when prefetched for CUDA)."""
        if self._prefetch is None:
            return self.task.batch(self.cfg.batch_size, max_len=self.cfg.train_max_len,
                                   pos_range=self.pos_range)
        try:
            return self._prefetch.next()
        except DataFailed as e:  # one line, saying what is on disk
            kept = (f"the checkpoint at step {self.saved_step} is intact"
                    if self.saved_step is not None else "no checkpoint was written")
            raise DataFailed(f"{e}; {kept}") from e.__cause__

    def _close_data(self) -> None:
        """Stop the producer (if any): the task is back after the last batch a step used."""
        if self._prefetch is not None:
            self._prefetch.close()

    def _data_state(self) -> dict:
        """The data stream's position after the last batch a step used (the producer may
        have drawn further)."""
        if self._prefetch is not None:
            return self._prefetch.state_dict()
        return self.task.state_dict()

    # -- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict | None:
        """The checkpoint dict on rank 0 (None on other ranks). Collective under DDP."""
        rng, data = capture_rng(), self._data_state()
        per_rank = gather((rng, data), self.d)
        if not self.d.is_main:
            return None
        state = {
            "format": FORMAT, "version": VERSION, "step": self.step,
            "config": self.cfg.saved_dict(),
            "model_config": dataclasses.asdict(self.model.config),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            **averages_to_save(self.averages),  # "ema", "bema"
            **({"saved_averages": self.saved_averages} if self.saved_averages else {}),
            "rng": rng, "rng_ranks": [r for r, _ in per_rank],
            "data": data, "data_ranks": [t for _, t in per_rank],
        }
        state["checksum"] = checksum(state)  # a flipped bit in the weights is found at load
        return state

    def save(self) -> None:
        """Write checkpoint.pt atomically (rank 0; every rank must call it under DDP).
        :class:`WriteFailed` when it cannot be written (the previous one stays)."""
        state = self.state_dict()
        if state is not None:
            save_checkpoint(self.out / CHECKPOINT, state, self.saved_step)
            self.saved_step = self.step

    def _check_disk_space(self) -> None:
        """ValueError (one line) when RUN_DIR's disk cannot hold two checkpoints (the old one
        stays until the new one is renamed onto it) and the snapshots still to be written."""
        base = nearest_existing(self.out)
        need = 2 * checkpoint_bytes(self.model, len(self.averages))
        free = shutil.disk_usage(base).free
        count, each = self.snapshot_plan()
        if count and need + count * each > free:
            raise ValueError(f"not enough disk space for {self.out}: {count} snapshots of "
                             f"{human_bytes(each)} (--snapshot-every {self.cfg.snapshot_every}) "
                             f"and two checkpoints of {human_bytes(need // 2)} need "
                             f"{human_bytes(need + count * each)}; {human_bytes(free)} free")
        if need > free:
            raise ValueError(f"not enough disk space for {self.out}: a checkpoint needs about "
                             f"{need / 2e6:.3g} MB and two must fit while one is replaced; "
                             f"{free / 1e6:.3g} MB free")

    # -- weight snapshots (agents.snapshots: the format; lgagent average reads them) ---------

    def snapshot_due(self, step: int) -> bool:
        """Whether step ``step`` gets a snapshot: 0, every multiple of --snapshot-every, and
        the run's last step (--steps)."""
        n = self.cfg.snapshot_every
        return bool(n) and (step % n == 0 or step == self.cfg.steps)

    def snapshot_plan(self) -> tuple[int, int]:
        """(snapshots this invocation will write from its current step on, bytes of one)."""
        n = self.cfg.snapshot_every
        if not n:
            return 0, 0
        start, end = self.step, self.cfg.steps
        count = end // n - start // n + (start == 0) + (end % n != 0)
        return count, snapshots.snapshot_bytes(self.model)

    def _prepare_snapshots(self) -> None:
        """Before the first write: remove the temporary files a killed writer left, and the
        snapshots after the checkpoint's step (a run killed after writing them and before its
        next checkpoint: the resumed run writes them again from the restored state)."""
        d = self.out / snapshots.DIR
        if not d.is_dir():
            return
        for tmp in d.glob(snapshots.TEMP_GLOB):  # .{name}.XXXXXXXX.tmp of train.atomic.atomic_path
            remove_stale_temps(d / tmp.name[1:].rsplit(".", 2)[0])
        for step, path in snapshots.listing(self.out).items():
            if step > self.step:
                path.unlink(missing_ok=True)

    def write_snapshot(self) -> None:
        """Write the raw weights at the current step into RUN_DIR/snapshots/ (atomic, rank 0).
        :class:`WriteFailed` (one line) when it cannot be written."""
        path = self.out / snapshots.DIR / snapshots.file_name(self.step)
        data = snapshots.encode(self.model.state_dict(), self.step)
        try:
            atomic_write_bytes(path, data)
        except OSError as e:
            raise WriteFailed.of(e, path, self.saved_step) from None

    # -- evaluation -------------------------------------------------------------------------

    def averaged(self) -> dict:
        """``{"raw": model, "ema": ..., "bema": ...}`` for the weights this run keeps."""
        return self.parts.averaged()

    def evaluate(self) -> dict:
        """Legality metrics of every kept weights on the fixed held-out batch (rank 0)."""
        return ev.evaluate_weights(self.averaged(), self._eval_batch, pad_id=self.task.pad_id,
                                   train_max_len=self.cfg.train_max_len,
                                   chunk_size=self.cfg.batch_size, device=self.device)

    def play(self) -> dict | None:
        """Games against a random player for every kept weights (Othello with play_games > 0).

        :func:`train.analysis.play.play_models` with seed :data:`train.analysis.PLAY_SEED`:
        the games (and results, ``{weights: match result}``) of ``lgagent play RUN --games
        N`` and ``lgagent eval RUN --play-games N`` on the saved weights.
        """
        if self.cfg.env != "othello" or self.cfg.play_games <= 0:
            return None
        from train.analysis import PLAY_SEED
        from train.analysis.play import play_models

        return play_models(self.averaged(), "random", self.cfg.play_games, PLAY_SEED)

    # -- logging (TensorBoard and the progress bar; rank 0 writes) ----------------------------

    def _tokens_per_step(self) -> int:
        return self.cfg.batch_size * self.cfg.train_max_len * self.d.world_size

    def _new_window(self, now: float) -> None:
        """Start accumulating the scalars of the next log step."""
        zero = partial(torch.zeros, (), device=self.device)
        self._window = {"t": now, "steps": 0, "data_s": 0.0, "loss": zero(), "gnorm": zero()}

    def _log_train(self, bar) -> None:
        """Mean loss (over every rank's data), grad norm, lr, tokens/s and data share since the
        last log step. Collective under DDP: every rank calls it at the same steps."""
        w = self._window
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        elapsed = max(now - w["t"], 1e-9)
        mean_loss = float(mean_over_ranks(w["loss"], self.d)) / w["steps"]
        tok_s = self._tokens_per_step() * w["steps"] / elapsed
        if self.d.is_main:
            scalars = {"loss/train": mean_loss,
                       "charts/grad_norm": float(w["gnorm"]) / w["steps"],
                       "charts/lr": self.scheduler.get_last_lr()[0],
                       "charts/tokens_per_s": tok_s,
                       "charts/data_share": w["data_s"] / elapsed}
            for tag, v in scalars.items():
                self.writer.add_scalar(tag, v, self.step)
            if self.tracker is not None:
                self.tracker.scalars(scalars, self.step)
            bar.set_postfix(loss=f"{mean_loss:.4f}", tok_s=f"{tok_s:,.0f}", refresh=False)
        self._new_window(now)

    def _log_eval(self, results: dict) -> None:
        for tag, v in ev.flat_scalars(results).items():
            self.writer.add_scalar(tag, v, self.step)
        if self.tracker is not None:
            self.tracker.scalars(ev.flat_scalars(results), self.step)
        parts = []
        for w, splits in results.items():
            for s in ev.SPLITS:  # the summaries; per_length goes into the final figure
                if s in splits:
                    ms = splits[s]
                    parts.append(f"{w}/{s} top1_err {ms['top1_err']:.4f} "
                                 f"sep_acc {ms['sep_acc']:.3f}")
        tqdm.write(f"step {self.step}: " + "; ".join(parts))

    def _log_figure(self, results: dict) -> None:
        """The per-length figure of the last evaluation (as ``lgagent eval --plot``) in TensorBoard."""
        from train.analysis.plots import per_length_figure

        fig = per_length_figure([(self.out.name, results, self.cfg.train_max_len)])
        self.writer.add_figure("eval/per_length", fig, self.step, close=False)
        if self.tracker is not None:
            self.tracker.figure("eval/per_length", fig, self.step)

    def _open_logs(self, fresh: bool) -> None:
        """config.toml and the TensorBoard writer; a fresh run also logs its config and hparams."""
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.out.mkdir(parents=True, exist_ok=True)
        for name in (CHECKPOINT, CONFIG):  # what a SIGKILL during an earlier write left behind
            remove_stale_temps(self.out / name)
        if self.cfg.snapshot_every or (self.out / snapshots.DIR).is_dir():
            self._prepare_snapshots()
            if fresh and self.snapshot_due(0):
                self.write_snapshot()  # step 0: the initial weights
        saved = self.cfg.saved_dict()
        try:
            atomic_write_text(self.out / CONFIG, to_toml(saved))
        except OSError as e:
            raise WriteFailed.of(e, self.out / CONFIG, self.saved_step) from None
        # events logged after the checkpoint's step (by the interrupted run) are discarded
        self.writer = SummaryWriter(log_dir=str(self.out),
                                    purge_step=None if fresh else self.step + 1)
        if self.cfg.track:  # wandb only now: a run without --track never imports it
            from train.training.tracking import WandbSink

            self.tracker = WandbSink(self.out, saved, fresh=fresh,
                                     tags=(self.cfg.env, self.cfg.preset))
        if not fresh:
            return
        table = "\n".join(f"|{k}|{v}|" for k, v in saved.items())
        self.writer.add_text("config", f"|param|value|\n|-|-|\n{table}", 0)
        # add_hparams() always writes a separate sub-run; write its summaries into this run.
        hp = {k: v for k, v in saved.items() if isinstance(v, (bool, int, float, str))}
        splits = ("seen", "unseen") if self.cfg.train_max_len < self.task.block_size else ("seen",)
        metrics = {f"eval/{w}/{s}/{m}": math.nan for w in self.averaged() for s in splits
                   for m in HPARAM_METRICS}
        exp, ssi, self._hparams_end = hparams(hp, metrics)
        self.writer.file_writer.add_summary(exp)
        self.writer.file_writer.add_summary(ssi)

    def _close_logs(self, play: dict | None, finished: bool) -> None:
        for w, r in (play or {}).items():  # rates of the match counts, the score, legality
            rates = {"win": r["wins"] / r["games"], "draw": r["draws"] / r["games"],
                     "loss": r["losses"] / r["games"], "score": r["score"],
                     "first_choice_legal": r["first_choice_legal"]}
            for k, v in rates.items():
                if v is not None:
                    self.writer.add_scalar(f"eval/{w}/play/{k}", v, self.step)
                    if self.tracker is not None:
                        self.tracker.scalars({f"eval/{w}/play/{k}": v}, self.step)
        if finished and self._hparams_end is not None:
            self.writer.file_writer.add_summary(self._hparams_end)
        self.writer.flush()
        self.writer.close()
        if self.tracker is not None:
            self.tracker.finish()
            self.tracker = None
