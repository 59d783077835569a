"""A trained lgagent model as the batched opponent of a random agent in the native vector env.

    python examples/batched_opponent.py                               # trains a tiny model first
    python examples/batched_opponent.py --run runs/quickstart --num-envs 1024 --device cuda
    python examples/batched_opponent.py --smoke                       # seconds

``OthelloVectorEnv(num_envs=N, opponent=BatchedModelPolicy(...))``: each ``step`` plays
every row's agent move in Numba, then asks the model once, in one forward pass, for the
replies of all rows whose opponent is to move (``act_batch(masks, histories, rngs)``), on
the CPU or a GPU. The agent here is a uniformly random masked player, its colour random
per game; any batched policy (``othello_env.make_policy("alphabeta")``, your own) works
the same way, and ``opponent="greedy"`` / ``"alphabeta"`` run inside the Numba kernel.
The script prints env-steps/s beside ``Othello-v0`` with a ``ModelPolicy`` opponent (one
forward pass per move) and the model's win rate against the random agent.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from lgagent_model import model_run

import othello_env  # noqa: F401  (registers Othello-v0)
from agents import ModelPolicy
from agents.policies import BatchedModelPolicy


def random_actions(rng, mask):
    """A uniformly random allowed action per row of an int8 (n, 65) mask."""
    return (rng.random(mask.shape) * mask).argmax(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=None, help="RUN directory of lgagent train (default: train one)")
    parser.add_argument("--train-steps", type=int, default=2000, help="steps of the tiny model trained here")
    parser.add_argument("--weights", default="ema", help="checkpoint weights: ema, bema or raw")
    parser.add_argument("--num-envs", type=int, default=1024, help="games played side by side")
    parser.add_argument("--steps", type=int, default=120, help="vector env steps to time")
    parser.add_argument("--single-steps", type=int, default=300, help="Othello-v0 steps to time, for comparison")
    parser.add_argument("--device", default="cpu", help="torch device of the model (cpu, cuda)")
    parser.add_argument("--seed", type=int, default=0, help="env seed (row i gets seed + i)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--smoke", action="store_true", help="a 20-step model, 64 envs, 40 steps (seconds)")
    args = parser.parse_args()
    if args.smoke:
        args.train_steps, args.num_envs, args.steps, args.single_steps = 20, 64, 40, 40
    for name in ("train_steps", "num_envs", "steps", "single_steps", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    torch.set_num_threads(args.threads)

    with model_run(args.run, args.train_steps, args.seed) as run:
        ckpt = str(run / "checkpoint.pt")
        opponent = BatchedModelPolicy(ckpt, weights=args.weights, device=args.device)
        envs = gym.make_vec("Othello-v0", num_envs=args.num_envs, agent_color="random", opponent=opponent)
        rng = np.random.default_rng(args.seed)
        _, info = envs.reset(seed=args.seed)
        _, _, _, _, info = envs.step(random_actions(rng, info["action_mask"]))  # warm-up
        wins = draws = games = 0
        t = time.perf_counter()
        for _ in range(args.steps):
            _, rewards, terminated, _, info = envs.step(random_actions(rng, info["action_mask"]))
            games += int(terminated.sum())
            wins += int((terminated & (rewards < 0)).sum())  # the agent's loss is the model's win
            draws += int((terminated & (rewards == 0)).sum())
        vector_rate = args.num_envs * args.steps / (time.perf_counter() - t)
        envs.close()

        single = gym.make("Othello-v0", agent_color="random",
                          opponent=ModelPolicy(ckpt, weights=args.weights, device=args.device))
        _, info = single.reset(seed=args.seed)
        t = time.perf_counter()
        for _ in range(args.single_steps):
            _, _, terminated, truncated, info = single.step(int(random_actions(rng, info["action_mask"][None])[0]))
            if terminated or truncated:
                _, info = single.reset()
        single_rate = args.single_steps / (time.perf_counter() - t)
    rate = f"{wins / games:.3f}, draws {draws / games:.3f}" if games else "n/a (no game finished)"
    print(f"batched lgagent opponent in the native vector env ({args.num_envs} envs, {args.device}): "
          f"env-steps/s {vector_rate:,.0f} vs Othello-v0 with ModelPolicy {single_rate:,.0f} "
          f"({vector_rate / single_rate:.1f}x); model win rate vs random {rate} ({games} games)")


if __name__ == "__main__":
    main()
