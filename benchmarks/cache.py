"""The key/value cache: how much faster a model plays with it than without (one run, ratios).

Prints one JSON object; each case runs the same work with ``use_cache=True`` and
``use_cache=False`` and gives ``ratio`` = time without / time with the cache:

* ``vector``: env-steps/s of ``OthelloVectorEnv(num_envs=N, opponent=BatchedModelPolicy(model))``,
  the agent a vectorised random legal move per row (included in the time), through
  autoresets: the batched opponent's per-row cache.
* ``single``: steps/s of ``gym.make("Othello-v0", opponent=ModelPolicy(model))`` (one
  Othello-v0 step: the agent's random move and the model's reply), through resets. With
  the cache a move's new tokens go through ``GPT.forward`` with the game's cache row;
  without it, ``GPT.forward`` over the whole history (the package's no-cache path), both
  under ``torch.inference_mode``.
* ``play``: seconds of :func:`train.analysis.play.match` of ``BatchedModelPolicy(model)``
  against random over ``--games`` games, what ``lgagent play --games N`` runs after loading
  the checkpoint (after a 2-game warm-up match: the kernels' one-time load is in neither
  time); ``same_results``: the two match results are equal.
* ``big``: the same match for the ``--big-preset`` model (default ``othello-gpt``, 25M
  parameters, random weights: speed does not depend on them) over ``--big-games`` games.
* ``single_big``: ``single`` with the big model, ``--big-single-steps`` steps.
* ``profile`` (with ``--profile``): the top cProfile entries (own time) of each case with the
  cache, where the remaining time goes.

``model``: the ``tiny`` preset with ``--n-layer`` layers, random weights, dropout 0, on
``--device``, ``--threads`` torch threads. Timings: best of ``--repeats`` after a warm-up for
the env cases, one run each for the matches. ``--smoke``: a few steps and games of each case
(the test that keeps this script working).

Usage: python benchmarks/cache.py [--num-envs 1024] [--vector-steps 60] [--single-steps 2000]
       [--games 1000] [--big-games 100] [--big-single-steps 300] [--big-preset othello-gpt]
       [--n-layer 1]
       [--repeats 3] [--device cpu] [--threads 1] [--profile] [--smoke]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import sys
import time

import gymnasium as gym
import numpy as np
import torch

import othello_env  # noqa: F401  (registers Othello-v0)
from agents import GPT, ModelPolicy, preset
from agents.policies import BatchedModelPolicy
from othello_env.vector import OthelloVectorEnv
from train.analysis.play import match

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run as a script or imported
import opponents  # noqa: E402  (benchmarks/opponents.py: random_actions, vector_rate)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def vector_rate(model, use_cache, num_envs, n_steps, repeats, device) -> float:
    """Env-steps/s of the native vector env with ``model`` as its batched opponent."""
    envs = OthelloVectorEnv(num_envs=num_envs, agent_color="random",
                            opponent=BatchedModelPolicy(model, device=device, use_cache=use_cache))
    return opponents.vector_rate(envs, n_steps, repeats)


def single_rate(model, use_cache, n_steps, repeats, device) -> float:
    env = gym.make("Othello-v0", agent_color="random",
                   opponent=ModelPolicy(model, device=device, seed=0, use_cache=use_cache))
    rng = np.random.default_rng(0)
    _, info = env.reset(seed=0)
    best = float("inf")
    for r in range(repeats + 1):  # the first pass warms up
        t = time.perf_counter()
        for _ in range(n_steps if r else min(50, n_steps)):
            m = info["action_mask"]
            _, _, terminated, truncated, info = env.step(int(opponents.random_actions(rng, m[None])[0]))
            if terminated or truncated:
                _, info = env.reset()
        if r:
            best = min(best, time.perf_counter() - t)
    return n_steps / best


def match_time(model, use_cache, games, device) -> tuple[float, dict]:
    # a 2-game warm-up: the first match in a process also loads othello_env.twoplayer's
    # Numba kernels (a one-time cost, whichever mode runs first)
    match(BatchedModelPolicy(model, device=device, seed=0, use_cache=use_cache), "random", 2,
          seed=0)
    t = time.perf_counter()
    res = match(BatchedModelPolicy(model, device=device, seed=0, use_cache=use_cache), "random",
                games, seed=0)
    return time.perf_counter() - t, res


def profiled(fn, top: int = 8) -> list[str]:
    """The ``top`` entries by own time of ``fn()``: 'tottime s  ncalls  function'."""
    prof = cProfile.Profile()
    prof.runcall(fn)
    st = pstats.Stats(prof)
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:top]
    return [f"{tt:.3f}s {nc:>7} {os.path.basename(f)}:{line}({name})"
            for (f, line, name), (_, nc, tt, _, _) in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-envs", type=int, default=1024, help="rows of the vector env")
    parser.add_argument("--vector-steps", type=int, default=60, help="vector env steps per timing")
    parser.add_argument("--single-steps", type=int, default=2000, help="Othello-v0 steps per timing")
    parser.add_argument("--games", type=int, default=1000, help="games of the play case")
    parser.add_argument("--big-games", type=int, default=100, help="games of the big model")
    parser.add_argument("--big-single-steps", type=int, default=300,
                        help="Othello-v0 steps of the big model")
    parser.add_argument("--big-preset", default="othello-gpt", help="preset of the big model")
    parser.add_argument("--n-layer", type=int, default=1, help="layers of the tiny model")
    parser.add_argument("--repeats", type=int, default=3, help="timings; the best is reported")
    parser.add_argument("--device", default="cpu", help="torch device of the models (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--profile", action="store_true", help="cProfile each cached case")
    parser.add_argument("--smoke", action="store_true", help="a few steps and games of each case")
    args = parser.parse_args()
    if args.smoke:
        args.num_envs, args.vector_steps, args.single_steps = 8, 4, 30
        args.games, args.big_games, args.big_preset, args.repeats = 4, 2, "tiny", 1
        args.big_single_steps = 10
    for name in ("num_envs", "vector_steps", "single_steps", "games", "big_games",
                 "big_single_steps", "n_layer", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = GPT(preset("tiny", n_layer=args.n_layer, dropout=0.0)).to(args.device).eval()
    big = GPT(preset(args.big_preset, dropout=0.0)).to(args.device).eval()
    out = {"model": {"preset": "tiny", "n_layer": args.n_layer, "device": args.device,
                     "parameters": model.num_params(), "torch_threads": args.threads}}

    rates = {c: vector_rate(model, c, args.num_envs, args.vector_steps, args.repeats, args.device)
             for c in (True, False)}
    out["vector"] = {"num_envs": args.num_envs, "steps": args.vector_steps,
                     "steps_per_s_cache": rates[True], "steps_per_s_no_cache": rates[False],
                     "ratio": rates[True] / rates[False]}
    log(f"vector env N={args.num_envs}: {rates[True]:,.0f} vs {rates[False]:,.0f} env-steps/s "
        f"({out['vector']['ratio']:.1f}x)")

    for case, m, steps, repeats in (("single", model, args.single_steps, args.repeats),
                                    ("single_big", big, args.big_single_steps, 1)):
        rates = {c: single_rate(m, c, steps, repeats, args.device) for c in (True, False)}
        out[case] = {"preset": "tiny" if m is model else args.big_preset, "steps": steps,
                     "steps_per_s_cache": rates[True], "steps_per_s_no_cache": rates[False],
                     "ratio": rates[True] / rates[False]}
        log(f"Othello-v0 ModelPolicy, {out[case]['preset']}: {rates[True]:,.0f} vs "
            f"{rates[False]:,.0f} steps/s ({out[case]['ratio']:.1f}x)")

    for case, m, games in (("play", model, args.games), ("big", big, args.big_games)):
        (t_c, r_c), (t_n, r_n) = (match_time(m, c, games, args.device) for c in (True, False))
        out[case] = {"preset": "tiny" if m is model else args.big_preset,
                     "parameters": m.num_params(), "games": games, "seconds_cache": t_c,
                     "seconds_no_cache": t_n, "ratio": t_n / t_c, "same_results": r_c == r_n}
        log(f"match {out[case]['preset']} ({m.num_params():,} parameters), {games} games vs "
            f"random: {t_c:.2f} s vs {t_n:.2f} s ({t_n / t_c:.1f}x)")

    if args.profile:
        out["profile"] = {
            "vector": profiled(lambda: vector_rate(model, True, args.num_envs, args.vector_steps,
                                                   1, args.device)),
            "single": profiled(lambda: single_rate(model, True, args.single_steps, 1, args.device)),
            "single_big": profiled(lambda: single_rate(big, True, args.big_single_steps, 1,
                                                       args.device)),
            "play": profiled(lambda: match_time(model, True, args.games, args.device)),
            "big": profiled(lambda: match_time(big, True, args.big_games, args.device)),
        }
    out["machine"] = {"python": platform.python_version(), "torch": torch.__version__,
                      "cpus": os.cpu_count(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
