"""PettingZoo self-play: a trained lgagent model against a random player in the AEC env.

    python examples/pettingzoo_selfplay.py --games 200                  # trains a tiny model first
    python examples/pettingzoo_selfplay.py --run runs/quickstart        # or loads a RUN directory
    python examples/pettingzoo_selfplay.py --smoke                      # seconds

Two policies with the project's interface ``act(observation, info)`` take turns through
``env.agent_iter()``: ``agents.ModelPolicy`` (greedy over the legal moves, reading the
history in ``info["moves"]``) and ``agents.RandomPolicy`` (uniform over
``observation["action_mask"]``). They swap colours every game, so neither keeps black.
Prints the model's win and draw rates and its share of wins as black and as white.
"""

from __future__ import annotations

import numpy as np
from lgagent_model import model_args, model_run

from agents import ModelPolicy, RandomPolicy
from othello_env.pettingzoo import env as othello_aec


def main() -> None:
    args = model_args(__doc__.split("\n")[0])

    with model_run(args.run, args.train_steps, args.seed) as run:
        players = {"model": ModelPolicy(str(run / "checkpoint.pt"), weights=args.weights),
                   "random": RandomPolicy(seed=args.seed)}
        env = othello_aec()
        outcome = {"black": [], "white": []}  # model's final reward, by the colour it played
        for g in range(args.games):
            seats = ("model", "random") if g % 2 == 0 else ("random", "model")
            by_agent = dict(zip(env.possible_agents, seats))  # player_0 is black
            env.reset(seed=args.seed + g)
            for agent in env.agent_iter():
                observation, reward, termination, truncation, info = env.last()
                if termination or truncation:
                    if by_agent[agent] == "model":
                        outcome["black" if agent == "player_0" else "white"].append(reward)
                    env.step(None)
                    continue
                env.step(players[by_agent[agent]].act(observation, info))
        env.close()
    every = np.array(outcome["black"] + outcome["white"])
    black, white = (float(np.mean(np.array(outcome[c]) > 0)) for c in ("black", "white"))
    print(f"PettingZoo self-play, lgagent model vs random: model win rate {np.mean(every > 0):.3f}, "
          f"draws {np.mean(every == 0):.3f} ({args.games} games; as black {black:.3f}, as white {white:.3f})")


if __name__ == "__main__":
    main()
