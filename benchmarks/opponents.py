"""Opponent speed: a batched lgagent model opponent in the native vector env vs one in Othello-v0.

Prints one JSON object:

* ``vector``: env-steps/s of ``OthelloVectorEnv(num_envs=N, opponent=BatchedModelPolicy(model))``
  (one forward pass per step for all rows whose opponent is to move), the agent playing a
  uniformly random legal move per row (a vectorised NumPy draw, included in the time).
* ``single``: steps/s of ``gym.make("Othello-v0", opponent=ModelPolicy(model))`` (one forward
  pass per opponent move), the same random agent. ``ratio`` = vector / single.
* ``builtin_vector``: env-steps/s of the vector env at the same N against the built-in
  opponents (``random``, ``greedy``, ``alphabeta``), run inside the Numba step kernel.
* ``model``: the model, a random-weights ``tiny`` preset with ``--n-layer`` layers (speed
  does not depend on the weights), on ``--device``.

One Othello-v0 step is the agent's move plus the opponent's reply. Timings are the best of
``--repeats`` after a warm-up (compilation excluded), with ``--threads`` torch threads.

Usage: python benchmarks/opponents.py [--num-envs 1024] [--vector-steps 60] [--single-steps 2000]
       [--repeats 3] [--n-layer 1] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import gymnasium as gym
import numpy as np
import torch

import othello_env  # noqa: F401  (registers Othello-v0)
from agents import GPT, ModelPolicy, preset
from agents.policies import BatchedModelPolicy
from othello_env.opponents import OPPONENT_NAMES
from othello_env.vector import OthelloVectorEnv


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def random_actions(rng, mask):
    """A uniformly random allowed action per row of an int8 (n, 65) mask."""
    return (rng.random(mask.shape) * mask).argmax(axis=1)


def vector_rate(envs, n_steps: int, repeats: int) -> float:
    rng = np.random.default_rng(0)
    _, info = envs.reset(seed=0)
    for _ in range(3):  # warm-up
        _, _, _, _, info = envs.step(random_actions(rng, info["action_mask"]))
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n_steps):
            _, _, _, _, info = envs.step(random_actions(rng, info["action_mask"]))
        best = min(best, time.perf_counter() - t)
    return envs.num_envs * n_steps / best


def single_rate(env, n_steps: int, repeats: int) -> float:
    rng = np.random.default_rng(0)
    _, info = env.reset(seed=0)
    best = float("inf")
    for r in range(repeats + 1):  # the first pass warms up
        t = time.perf_counter()
        for _ in range(n_steps if r else 50):
            _, _, terminated, truncated, info = env.step(int(random_actions(rng, info["action_mask"][None])[0]))
            if terminated or truncated:
                _, info = env.reset()
        if r:
            best = min(best, time.perf_counter() - t)
    return n_steps / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-envs", type=int, default=1024, help="rows of the vector env")
    parser.add_argument("--vector-steps", type=int, default=60, help="vector env steps per timing")
    parser.add_argument("--single-steps", type=int, default=2000, help="Othello-v0 steps per timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings; the best is reported")
    parser.add_argument("--n-layer", type=int, default=1, help="layers of the tiny model")
    parser.add_argument("--device", default="cpu", help="torch device of the model (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    for name in ("num_envs", "vector_steps", "single_steps", "repeats", "n_layer", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = GPT(preset("tiny", n_layer=args.n_layer, dropout=0.0)).to(args.device).eval()

    vec = OthelloVectorEnv(num_envs=args.num_envs, agent_color="random",
                           opponent=BatchedModelPolicy(model, device=args.device))
    vector = vector_rate(vec, args.vector_steps, args.repeats)
    log(f"vector env, N={args.num_envs}, batched model opponent: {vector:,.0f} env-steps/s")
    env = gym.make("Othello-v0", agent_color="random", opponent=ModelPolicy(model, device=args.device))
    single = single_rate(env, args.single_steps, args.repeats)
    log(f"Othello-v0, ModelPolicy opponent: {single:,.0f} steps/s")
    builtin = {}
    for name in OPPONENT_NAMES:
        envs = OthelloVectorEnv(num_envs=args.num_envs, agent_color="random", opponent=name)
        builtin[name] = vector_rate(envs, args.vector_steps, args.repeats)
        log(f"vector env, N={args.num_envs}, {name}: {builtin[name]:,.0f} env-steps/s")
    print(json.dumps({
        "model": {"preset": "tiny", "n_layer": args.n_layer, "device": args.device,
                  "parameters": sum(p.numel() for p in model.parameters()), "torch_threads": args.threads},
        "vector": {"num_envs": args.num_envs, "steps": args.vector_steps, "steps_per_s": vector},
        "single": {"steps": args.single_steps, "steps_per_s": single},
        "ratio": vector / single,
        "builtin_vector": {name: {"num_envs": args.num_envs, "steps_per_s": v} for name, v in builtin.items()},
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cpus": os.cpu_count(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
    }, indent=2))


if __name__ == "__main__":
    main()
