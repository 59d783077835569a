"""Masked random play in Othello-v0: the single env, then the native vector env.

    python examples/masked_random_rollout.py --episodes 100 --num-envs 64
    python examples/masked_random_rollout.py --smoke     # 4 episodes, 4 envs (seconds)

A policy here is the project's contract: ``policy(observation, info) -> action``,
with the legal actions in ``info["action_mask"]`` (int8, 65 = 64 squares + pass).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import othello_env  # noqa: F401  (registers Othello-v0)


def make_random_policy(seed: int):
    rng = np.random.default_rng(seed)

    def policy(observation, info):
        return int(rng.choice(np.flatnonzero(info["action_mask"])))

    return policy


def single_env(episodes: int, seed: int) -> dict:
    env = gym.make("Othello-v0", agent_color="random")
    policy = make_random_policy(seed)
    returns, lengths = [], []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        total, steps, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy(obs, info))
            total, steps, done = total + reward, steps + 1, terminated or truncated
        returns.append(total)
        lengths.append(steps)
    return {
        "episodes": episodes,
        "mean_return": float(np.mean(returns)),
        "mean_agent_steps": float(np.mean(lengths)),
    }


def vector_env(episodes: int, num_envs: int, seed: int) -> dict:
    envs = gym.make_vec("Othello-v0", num_envs=num_envs)  # the native Numba vector env
    rng = np.random.default_rng(seed)
    obs, info = envs.reset(seed=seed)
    finished, returns = 0, []
    while finished < episodes:
        mask = info["action_mask"].astype(bool)
        # one random legal action per row (a row that just ended has the mask "pass only";
        # the autoreset ignores its action)
        scores = np.where(mask, rng.random(mask.shape), -1.0)
        actions = scores.argmax(axis=1)
        obs, rewards, terminated, truncated, info = envs.step(actions)
        done = terminated | truncated
        finished += int(done.sum())
        returns.extend(rewards[done].tolist())
    envs.close()
    return {"episodes": finished, "mean_return": float(np.mean(returns))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="4 episodes, 4 envs (seconds)")
    args = parser.parse_args()
    if args.smoke:
        args.episodes, args.num_envs = 4, 4
    print("single env:", single_env(args.episodes, args.seed))
    print("vector env:", vector_env(args.episodes, args.num_envs, args.seed))


if __name__ == "__main__":
    main()
