"""Data cost vs training cost: producing a fresh batch as a share of one training step.

Target: a fresh batch of either task costs under 5% of a training step of the
``tiny`` preset at the default batch size (``train.training.config.RunConfig.batch_size``).

For each task it times ``task.batch(B)`` (fresh stream; for Othello also a
corpus file) and one full training step of ``agents`` preset ``tiny`` sized to
the task (forward, the task's default loss, backward, gradient clipping, AdamW
step: what ``train.training.trainer`` does per step), each the median of ``--repeats``
runs after warm-up. Set complement is also measured against its default
preset ``setcomp-1l``. Prints one JSON object.

    python benchmarks/data.py [--batch-size 512] [--repeats 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np
import torch

from agents.config import preset
from agents.losses import loss as loss_fn
from agents.model import GPT, param_groups
from train.data.tasks import make_task
from train.training.config import DEFAULT_LOSS, RunConfig

TARGET_SHARE = 0.05


def median_time(fn, repeats: int, warmup: int = 2, sync=None) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def train_step_time(task, preset_name: str, loss_name: str, batch_size: int, repeats: int,
                    device: str) -> dict:
    cfg = preset(preset_name, vocab_size=task.vocab_size, block_size=task.block_size)
    torch.manual_seed(0)
    model = GPT(cfg).to(device)
    model.train()
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=5e-4, betas=(0.9, 0.95))
    batch = task.eval_batch(batch_size).to(device)  # a fixed batch: this times the model only

    def step():
        logits = model(batch.tokens)
        loss = loss_fn(loss_name, logits, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    return {"preset": preset_name, "loss": loss_name, "params": model.num_params(),
            "step_s": median_time(step, repeats, warmup=3, sync=sync)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=RunConfig.batch_size)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--corpus-games", type=int, default=100_000)
    args = p.parse_args()
    B, R = args.batch_size, args.repeats

    results = {"batch_size": B, "repeats": R, "device": args.device, "target_share": TARGET_SHARE,
               "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
               "machine": platform.processor() or platform.machine(), "tasks": {}}

    cases = [("othello", {}, ["tiny"]), ("setcomp", {"vocab_size": 16}, ["tiny", "setcomp-1l"])]
    with tempfile.TemporaryDirectory() as tmp:
        for name, kwargs, presets in cases:
            task = make_task(name, seed=0, **kwargs)
            data_s = median_time(lambda: task.batch(B), R, warmup=3)  # noqa: B023 (called at once)
            entry = {"vocab_size": task.vocab_size, "block_size": task.block_size,
                     "fresh_batch_s": data_s, "steps": []}
            if name == "othello":
                from othello_env.games import generate_games

                path = os.path.join(tmp, "games.npy")
                np.save(path, generate_games(args.corpus_games, seed=1))
                t0 = time.perf_counter()
                corpus = make_task("othello", data=path, seed=0)
                entry["corpus_load_s"] = time.perf_counter() - t0
                entry["corpus_games"] = args.corpus_games
                entry["corpus_batch_s"] = median_time(lambda: corpus.batch(B), R, warmup=3)  # noqa: B023
            for preset_name in presets:
                st = train_step_time(task, preset_name, DEFAULT_LOSS[name], B, R, args.device)
                st["fresh_share"] = data_s / st["step_s"]
                if "corpus_batch_s" in entry:
                    st["corpus_share"] = entry["corpus_batch_s"] / st["step_s"]
                st["under_target"] = st["fresh_share"] < TARGET_SHARE
                entry["steps"].append(st)
            results["tasks"][name] = entry
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
