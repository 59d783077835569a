"""Training throughput of `lgagent train` per preset, and the share of step time spent on data.

For each case it builds the run exactly as ``lgagent train`` does
(:func:`train.training.assemble.build` and :class:`train.training.trainer.Trainer`, with EMA on as in
the default recipe) and times the loop body: ``task.batch`` (fresh data) and
``Trainer.train_step`` (forward, loss, backward, clipping, AdamW, scheduler,
EMA update). Reported per case: median seconds per step and for the data,
tokens/s (batch x sequence length / step time) and ``data_share`` = data time /
(data + train step) time. With ``--prefetch N`` (the trainer's default, 2) the
batches come from :class:`train.training.prefetch.Prefetcher` and the data time is what
the step waited for its batch (as the trainer's ``charts/data_share``);
``--prefetch 0`` times ``task.batch`` inside the step. Prints one JSON object.

    python benchmarks/training.py [--device cpu] [--steps 10] [--threads N] [--prefetch 0]

Cases (CPU-sized; pass --scale to multiply the batch sizes on a GPU):
tiny on Othello (batch 64), setcomp-1l on set complement v=16 (batch 512),
othello-gpt on Othello (batch 16).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import torch

from train.training import config as C
from train.training.assemble import build
from train.training.distributed import Dist, resolve_device
from train.training.trainer import Trainer

CASES = [
    {"env": "othello", "preset": "tiny", "batch_size": 64},
    {"env": "setcomp", "preset": "setcomp-1l", "batch_size": 512},
    {"env": "othello", "preset": "othello-gpt", "batch_size": 16},
]


def measure(case: dict, steps: int, warmup: int, device: str, prefetch: int = 0) -> dict:
    cfg = C.merge({**case, "ema": True, "eval_every": 0, "ckpt_every": 0, "play_games": 0,
                   "device": device, "steps": steps + warmup, "prefetch": prefetch})
    C.validate(cfg)
    cfg, task, model_cfg = build(C.resolve(cfg))
    dev = resolve_device(device, Dist())
    with tempfile.TemporaryDirectory() as out:
        tr = Trainer(cfg, task, model_cfg, out, device=dev, progress=False)
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        data_s, step_s = [], []
        tr._open_data(warmup + steps)  # the trainer's own data path (prefetched or not)
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            batch = tr._next_batch()
            t1 = time.perf_counter()
            loss, _ = tr.train_step(batch.to(dev, non_blocking=True))
            float(loss)  # wait for the step (the loop syncs only at log steps)
            sync()
            t2 = time.perf_counter()
            if i >= warmup:
                data_s.append(t1 - t0)
                step_s.append(t2 - t1)
        tr._close_data()
        params = tr.model.num_params()
    d, s = statistics.median(data_s), statistics.median(step_s)
    tokens = cfg.batch_size * cfg.train_max_len
    return {"env": cfg.env, "preset": cfg.preset, "params": params, "batch_size": cfg.batch_size,
            "seq_len": cfg.train_max_len, "loss": cfg.loss, "steps_timed": steps,
            "prefetch": prefetch, "data_s": round(d, 6), "train_step_s": round(s, 6),
            "tokens_per_s": round(tokens / (d + s), 1), "data_share": round(d / (d + s), 6)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--steps", type=int, default=10, help="timed steps per case")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--scale", type=int, default=1, help="multiply every batch size")
    p.add_argument("--only", default=None, help="comma-separated presets to run")
    p.add_argument("--prefetch", type=int, default=2,
                   help="batches built ahead in a background thread (0: inside the step)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = [dict(c, batch_size=c["batch_size"] * args.scale) for c in CASES
             if args.only is None or c["preset"] in args.only.split(",")]
    results = [measure(c, args.steps, args.warmup, args.device, args.prefetch) for c in cases]
    print(json.dumps({
        "benchmark": "train", "device": args.device, "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__,
        "cases": results,
    }, indent=2))


if __name__ == "__main__":
    main()
