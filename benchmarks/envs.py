"""Environment speed: Othello-v0 beside CartPole-v1, the native vector env beside pgx.

Prints one JSON object:

* ``single``: steps/s of ``gym.make("Othello-v0")`` (default wrappers, random opponent,
  the agent playing its first legal action: ``info["action_mask"].argmax()``) and of
  ``gym.make("CartPole-v1")`` (actions from a pre-drawn random array), measured
  alternately in the same process; ``ratio_vs_cartpole`` = Othello / CartPole
  (target >= 0.5). Also the unwrapped env.
* ``vector``: env-steps/s of ``gym.make_vec("Othello-v0", num_envs=N)`` (the native
  Numba env) at each N, with a uniformly random legal action per row picked by a
  small Numba function (``with_actions``) and without that picking time
  (``env_only``).
* ``pgx``: pgx's batched ``othello`` on the CPU at the same N (``jax.vmap`` of
  ``env.step`` with ``pgx.experimental.auto_reset``, random legal actions drawn in
  the same jitted call), when ``pgx`` and ``jax`` import; else an ``error``.
  ``ratio_ours_vs_pgx`` = ours (with actions) / pgx (target >= 10). Note one
  Othello-v0 step is two plies (the agent's and the random opponent's); one pgx
  step is one ply.

Usage: python benchmarks/envs.py [--single-steps 100000] [--vector-steps 300]
       [--sizes 1024 4096] [--repeats 3] [--no-peers]
pgx is the ``bench`` extra; it can live in a separate venv created with
``--system-site-packages`` and run this script with that venv's python.
Timings are the best of ``--repeats`` after a warm-up (compilation excluded).
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
from numba import njit

import othello_env  # noqa: F401  (registers Othello-v0)
from othello_env.engine import lowest_square, popcount
from othello_env.kernels import PASS


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# -- single env --------------------------------------------------------------------


def othello_rate(env, n_steps: int) -> float:
    _, info = env.reset(seed=0)
    t = time.perf_counter()
    for _ in range(n_steps):
        _, _, terminated, truncated, info = env.step(int(info["action_mask"].argmax()))
        if terminated or truncated:
            _, info = env.reset()
    return n_steps / (time.perf_counter() - t)


def cartpole_rate(env, n_steps: int) -> float:
    actions = np.random.default_rng(0).integers(0, 2, n_steps).tolist()
    env.reset(seed=0)
    t = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return n_steps / (time.perf_counter() - t)


def bench_single(n_steps: int, repeats: int) -> dict:
    othello = gym.make("Othello-v0")
    cartpole = gym.make("CartPole-v1")
    raw = gym.make("Othello-v0").unwrapped
    othello_rate(othello, 1000)  # warm-up: load the Numba cache
    othello_rate(raw, 1000)
    cartpole_rate(cartpole, 1000)
    best = {"othello": 0.0, "othello_unwrapped": 0.0, "cartpole": 0.0}
    for _ in range(repeats):  # alternate, so both see the same machine load
        best["cartpole"] = max(best["cartpole"], cartpole_rate(cartpole, n_steps))
        best["othello"] = max(best["othello"], othello_rate(othello, n_steps))
        best["othello_unwrapped"] = max(best["othello_unwrapped"], othello_rate(raw, n_steps))
    out = {
        "steps": n_steps,
        "othello_steps_per_s": best["othello"],
        "othello_unwrapped_steps_per_s": best["othello_unwrapped"],
        "cartpole_steps_per_s": best["cartpole"],
        "ratio_vs_cartpole": best["othello"] / best["cartpole"],
    }
    log(
        f"single: Othello-v0 {best['othello']:,.0f} steps/s, CartPole-v1 {best['cartpole']:,.0f} steps/s, "
        f"ratio {out['ratio_vs_cartpole']:.2f}"
    )
    return out


# -- vector env ----------------------------------------------------------------------


@njit(cache=True)
def random_legal_actions(mask, state, out):
    """out[i] = a uniformly random legal action of row i (0 if none); xorshift64 state in state[0]."""
    s = state[0]
    for i in range(mask.shape[0]):
        s ^= s << np.uint64(13)
        s ^= s >> np.uint64(7)
        s ^= s << np.uint64(17)
        legal = np.uint64(0)  # the row's placements as a bitboard
        for a in range(64):
            legal |= np.uint64(mask[i, a]) << np.uint64(a)
        n = popcount(legal)
        if n == 0:
            out[i] = PASS if mask[i, PASS] else 0
            continue
        k = np.int64((s >> np.uint64(32)) * np.uint64(n) >> np.uint64(32))
        for _ in range(k):
            legal &= legal - np.uint64(1)
        out[i] = lowest_square(legal)
    state[0] = s


def bench_vector(sizes, n_steps: int, repeats: int) -> dict:
    out = {}
    for n in sizes:
        envs = gym.make_vec("Othello-v0", num_envs=n, vectorization_mode="vector_entry_point")
        _, info = envs.reset(seed=0)
        state = np.array([0x9E3779B97F4A7C15], np.uint64)
        actions = np.zeros(n, np.int64)
        for _ in range(5):  # warm-up
            random_legal_actions(info["action_mask"], state, actions)
            _, _, _, _, info = envs.step(actions)
        best_total, best_env = float("inf"), float("inf")
        for _ in range(repeats):
            env_time = 0.0
            t = time.perf_counter()
            for _ in range(n_steps):
                random_legal_actions(info["action_mask"], state, actions)
                t0 = time.perf_counter()
                _, _, _, _, info = envs.step(actions)
                env_time += time.perf_counter() - t0
            best_total = min(best_total, time.perf_counter() - t)
            best_env = min(best_env, env_time)
        out[str(n)] = {
            "env_steps_per_s": n * n_steps / best_total,
            "env_steps_per_s_env_only": n * n_steps / best_env,
        }
        log(
            f"vector N={n}: {out[str(n)]['env_steps_per_s']:,.0f} env-steps/s with actions, "
            f"{out[str(n)]['env_steps_per_s_env_only']:,.0f} env only"
        )
    return out


def bench_pgx(sizes, n_steps: int, repeats: int) -> dict:
    try:
        import jax
        import jax.numpy as jnp
        import pgx
        from pgx.experimental import auto_reset
    except Exception as e:  # the bench extra is optional
        return {"error": f"{type(e).__name__}: {e}"}
    try:
        env = pgx.make("othello")
        out = {"version": pgx.__version__, "jax": jax.__version__, "devices": str(jax.devices())}
        def make_step(n):
            step = jax.vmap(auto_reset(env.step, env.init))

            @jax.jit
            def one(state, key):
                k1, k2, k3 = jax.random.split(key, 3)
                logits = jnp.where(state.legal_action_mask, 0.0, -jnp.inf)
                action = jax.random.categorical(k1, logits, axis=-1)
                return step(state, action, jax.random.split(k2, n)), k3

            return one

        init = jax.jit(jax.vmap(env.init))
        for n in sizes:
            one = make_step(n)
            key = jax.random.PRNGKey(0)
            state = init(jax.random.split(key, n))
            for _ in range(5):
                state, key = one(state, key)
            jax.block_until_ready(state)
            best = float("inf")
            for _ in range(repeats):
                t = time.perf_counter()
                for _ in range(n_steps):
                    state, key = one(state, key)
                jax.block_until_ready(state)
                best = min(best, time.perf_counter() - t)
            out[str(n)] = {"env_steps_per_s": n * n_steps / best}
            log(f"pgx N={n}: {out[str(n)]['env_steps_per_s']:,.0f} env-steps/s")
        return out
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--single-steps", type=int, default=100_000)
    p.add_argument("--vector-steps", type=int, default=300, help="batched steps per timing of ours")
    p.add_argument("--pgx-steps", type=int, default=50, help="batched steps per timing of pgx")
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-peers", action="store_true")
    args = p.parse_args()
    if min(args.sizes + [args.single_steps, args.vector_steps, args.pgx_steps, args.repeats]) < 1:
        p.error("sizes, steps and repeats must be positive")

    result = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "single": bench_single(args.single_steps, args.repeats),
        "vector": bench_vector(args.sizes, args.vector_steps, args.repeats),
    }
    if not args.no_peers:
        result["pgx"] = bench_pgx(args.sizes, args.pgx_steps, args.repeats)
        if "error" not in result["pgx"]:
            result["ratio_ours_vs_pgx"] = {
                str(n): result["vector"][str(n)]["env_steps_per_s"]
                / result["pgx"][str(n)]["env_steps_per_s"]
                for n in args.sizes
            }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
