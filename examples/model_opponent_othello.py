"""A trained lgagent model as the opponent inside Othello-v0 (through agents.ModelPolicy).

    python examples/model_opponent_othello.py --games 200                # trains a tiny model first
    python examples/model_opponent_othello.py --run runs/quickstart      # or loads a RUN directory
    python examples/model_opponent_othello.py --smoke                    # seconds

``gym.make("Othello-v0", opponent=ModelPolicy(...))``: the env asks the model for the
opponent's reply inside ``reset``/``step``, handing it the board from its side and
``info`` with ``"action_mask"`` and ``"moves"`` (the history the model reads). The agent
here is a uniformly random masked player, its colour random per game. The model is a
legal-move predictor (trained on random games), not a trained player: the figure shows
how it fares as a game opponent, and how often its unmasked first choice was illegal.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from lgagent_model import model_args, model_run

import othello_env  # noqa: F401  (registers Othello-v0)
from agents import ModelPolicy


def main() -> None:
    args = model_args(__doc__.split("\n")[0])

    with model_run(args.run, args.train_steps, args.seed) as run:
        model = ModelPolicy(str(run / "checkpoint.pt"), weights=args.weights, greedy=True)
        env = gym.make("Othello-v0", agent_color="random", opponent=model)
        rng = np.random.default_rng(args.seed)
        results = []  # +1 / 0 / -1 from the model's side
        for g in range(args.games):
            obs, info = env.reset(seed=args.seed + g)
            done, reward = False, 0.0
            while not done:
                action = int(rng.choice(np.flatnonzero(info["action_mask"])))
                obs, reward, terminated, truncated, info = env.step(action)
                done = terminated or truncated
            results.append(-reward)  # the agent's loss is the model's win
        env.close()
    results = np.array(results)
    illegal = model.n_illegal_choices / max(model.n_decisions, 1)
    print(f"lgagent model as the Othello-v0 opponent: win rate vs random {np.mean(results > 0):.3f}, "
          f"draws {np.mean(results == 0):.3f} ({args.games} games); unmasked first choice illegal "
          f"in {illegal:.3%} of {model.n_decisions} decisions")


if __name__ == "__main__":
    main()
