"""Set complement as an RL task: SB3's PPO on SetComplement-v0 built by make_vec_env.

    pip install -e '.[examples]'
    python examples/sb3_setcomp.py --timesteps 100000   # a few minutes on one core
    python examples/sb3_setcomp.py --smoke              # seconds

Each step the agent names a token of ``0..vocab_size-1``; a new token earns +1, a
repeated one -1 and ends the episode; naming them all is a success. Plain PPO (no
action mask) must learn from the rewards alone which tokens are absent: the set
complement of what it has seen, the prediction task of the paper. ``make_vec_env``
asks every env for ``render_mode="rgb_array"``, which SetComplement-v0 supports; SB3
one-hot encodes its ``MultiDiscrete`` observation (the sequence, padded).

Prints the success rate (every token named once, greedy policy) and the mean return
before and after training; a uniformly random player succeeds with probability
``v! / v**v`` (0.0024 for v = 8).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import setcomp_env  # noqa: F401  (registers SetComplement-v0)


def evaluate(model, vocab_size: int, episodes: int, seed: int) -> tuple[float, float]:
    """(success rate, mean return) of the greedy policy over ``episodes`` episodes."""
    env = gym.make("SetComplement-v0", vocab_size=vocab_size)
    successes, returns = 0, []
    for e in range(episodes):
        obs, info = env.reset(seed=seed + e)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(int(action))
            done, total = terminated or truncated, total + reward
        successes += bool(info["success"])
        returns.append(total)
    env.close()
    return successes / episodes, float(np.mean(returns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab-size", type=int, default=8)
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=200, help="evaluation episodes before and after")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--smoke", action="store_true", help="a few hundred steps, 10 episodes (seconds)")
    args = parser.parse_args()
    if args.smoke:
        args.timesteps, args.n_envs, args.episodes = 256, 2, 10
    torch.set_num_threads(args.threads)

    envs = make_vec_env("SetComplement-v0", n_envs=args.n_envs, seed=args.seed,
                        env_kwargs={"vocab_size": args.vocab_size})
    n_steps = 64 if args.smoke else 256
    model = PPO("MlpPolicy", envs, n_steps=n_steps, batch_size=min(256, n_steps * args.n_envs),
                learning_rate=3e-4, gamma=0.99, ent_coef=0.01, seed=args.seed, verbose=0)
    before = evaluate(model, args.vocab_size, args.episodes, seed=10_000)
    model.learn(total_timesteps=args.timesteps)
    after = evaluate(model, args.vocab_size, args.episodes, seed=10_000)
    print(f"PPO on SetComplement-v0 (vocab {args.vocab_size}), {args.timesteps} steps: success rate "
          f"before {before[0]:.3f}, after {after[0]:.3f}; mean return before {before[1]:.2f}, "
          f"after {after[1]:.2f} (max {args.vocab_size}; {args.episodes} episodes)")


if __name__ == "__main__":
    main()
