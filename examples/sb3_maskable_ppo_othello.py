"""MaskablePPO (sb3-contrib) on Othello-v0 against the built-in random opponent.

    pip install -e '.[examples]'
    python examples/sb3_maskable_ppo_othello.py --timesteps 20000   # a few minutes on one core
    python examples/sb3_maskable_ppo_othello.py --smoke             # seconds

Prints the agent's win rate against the uniform random opponent before and after
training (the agent's colour drawn at random each game). MaskablePPO finds the
legal-action mask through ``action_masks()``: ``DummyVecEnv`` reaches it on the env
inside gym.make's wrappers; for a single wrapped env use
``env.get_wrapper_attr("action_masks")()`` (plain attribute access stops at the wrappers).

SB3's ``CnnPolicy`` wants image-like uint8 observations with at least 36x36 pixels, so it
refuses the (3, 8, 8) int8 board: ``BoardExtractor`` below is a small convolutional
features extractor for it (3x3 convolutions with padding keep the 8x8 board).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

import othello_env  # noqa: F401  (registers Othello-v0)


class BoardExtractor(BaseFeaturesExtractor):
    """(B, 3, 8, 8) board planes (mine, theirs, my legal moves) -> (B, features_dim)."""

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 256, channels: int = 32):
        super().__init__(observation_space, features_dim)
        c_in = observation_space.shape[0]
        self.net = nn.Sequential(
            nn.Conv2d(c_in, channels, 3, padding=1), nn.ReLU(),  # (B, C, 8, 8)
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.Flatten(),  # (B, C*64)
            nn.Linear(channels * 64, features_dim), nn.ReLU(),
        )

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        # SB3 hands a Box observation over as float without scaling (not an image space): 0/1 planes
        return self.net(observations.float())


def win_rate(model, games: int, seed: int) -> float:
    """Share of games the model wins (greedy, masked) against the random opponent; draws count 0."""
    env = gym.make("Othello-v0", agent_color="random")
    wins = 0
    for g in range(games):
        obs, info = env.reset(seed=seed + g)
        done, reward = False, 0.0
        while not done:
            mask = env.get_wrapper_attr("action_masks")()  # == info["action_mask"].astype(bool)
            action, _ = model.predict(obs, action_masks=mask, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(int(action))
            done = terminated or truncated
        wins += reward > 0
    env.close()
    return wins / games


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timesteps", type=int, default=20_000, help="agent steps of training")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--games", type=int, default=200, help="evaluation games before and after")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--smoke", action="store_true", help="a few hundred steps, 10 games (seconds)")
    args = parser.parse_args()
    if args.smoke:
        args.timesteps, args.n_envs, args.games = 256, 2, 10
    torch.set_num_threads(args.threads)

    envs = make_vec_env("Othello-v0", n_envs=args.n_envs, seed=args.seed,
                        env_kwargs={"agent_color": "random"})
    n_steps = 64 if args.smoke else 256  # rollout length per env
    model = MaskablePPO(
        "MlpPolicy", envs, n_steps=n_steps, batch_size=min(256, n_steps * args.n_envs),
        learning_rate=3e-4, gamma=0.99, ent_coef=0.01, seed=args.seed, verbose=0,
        policy_kwargs={"features_extractor_class": BoardExtractor,
                       "features_extractor_kwargs": {"features_dim": 256}},
    )
    before = win_rate(model, args.games, seed=10_000)
    model.learn(total_timesteps=args.timesteps)
    after = win_rate(model, args.games, seed=10_000)
    print(f"MaskablePPO on Othello-v0, {args.timesteps} steps: win rate vs random "
          f"before {before:.3f}, after {after:.3f} ({args.games} games)")


if __name__ == "__main__":
    main()
