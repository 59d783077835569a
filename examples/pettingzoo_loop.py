"""Two policies play each other in the PettingZoo AEC Othello env.

    python examples/pettingzoo_loop.py --episodes 20
    python examples/pettingzoo_loop.py --smoke          # 2 episodes (seconds)

player_0 (black) plays greedily (the move that leaves it the most discs), player_1
uniformly at random. Both read the legal actions from ``observation["action_mask"]``;
action 64 is the pass, legal only when nothing else is.
"""

from __future__ import annotations

import argparse

import numpy as np

from othello_env.engine import apply_move
from othello_env.pettingzoo import env as othello_aec


def random_policy(rng):
    def policy(observation, info):
        return int(rng.choice(np.flatnonzero(observation["action_mask"])))

    return policy


def greedy_policy(observation, info):
    """The legal move after which the mover has the most discs (tried with the engine)."""
    mask = observation["action_mask"]
    legal = np.flatnonzero(mask)
    if legal.tolist() == [64]:
        return 64
    weights = 1 << np.arange(64, dtype=np.uint64)
    me = int(weights[observation["observation"][0].ravel() == 1].sum())
    opp = int(weights[observation["observation"][1].ravel() == 1].sum())
    return int(max(legal, key=lambda sq: bin(apply_move(me, opp, int(sq))[0]).count("1")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="2 episodes (seconds)")
    args = parser.parse_args()
    if args.smoke:
        args.episodes = 2
    env = othello_aec()
    policies = {
        "player_0": greedy_policy,
        "player_1": random_policy(np.random.default_rng(args.seed)),
    }
    totals = {agent: 0.0 for agent in env.possible_agents}
    for ep in range(args.episodes):
        env.reset(seed=args.seed + ep)
        for agent in env.agent_iter():
            observation, reward, termination, truncation, info = env.last()
            totals[agent] += reward
            action = None if termination or truncation else policies[agent](observation, info)
            env.step(action)
    env.close()
    print(
        f"episodes: {args.episodes}, total reward greedy player_0: {totals['player_0']:+.0f}, "
        f"random player_1: {totals['player_1']:+.0f}"
    )


if __name__ == "__main__":
    main()
