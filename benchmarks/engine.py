"""Engine speed: random games to the end, perft, and the same workload on peer engines.

Prints one JSON object. Ours: ``generate_games`` games/s on 1 thread and on
all Numba threads, ``legal_move_masks`` / ``validate_games`` games/s, perft
leaves/s. Peers, when importable (the ``bench`` extra): OpenSpiel (pyspiel,
one game at a time from Python, uniformly random legal action), rust-reversi
(its ``get_random_move`` from Python), pgx (JAX on the CPU, batched, a jitted
while-loop until every game has ended). A peer that is missing or fails is
reported with an ``error`` instead of a figure. Ratios are peer / ours, so
below 1 means the peer is slower.

Usage: python benchmarks/engine.py [--games 2000000] [--pgx-batch 16384] [--no-peers]
Timings are the best of ``--repeats`` runs after a warm-up (compilation excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numba
import numpy as np

from othello_env import engine
from othello_env.games import generate_games, legal_move_masks, validate_games


def best_time(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def bench_ours(n_games, repeats):
    all_threads = numba.config.NUMBA_NUM_THREADS
    generate_games(1000, seed=0)  # compile / load cache
    out = {"threads_all": all_threads, "games": n_games}
    try:
        numba.set_num_threads(1)
        out["games_per_s_1_thread"] = n_games / best_time(lambda: generate_games(n_games, 1),
                                                          repeats)
    finally:
        numba.set_num_threads(all_threads)
    out["games_per_s_all_threads"] = n_games / best_time(lambda: generate_games(n_games, 1),
                                                         repeats)
    log(f"ours: {out['games_per_s_1_thread']:,.0f} games/s (1 thread), "
        f"{out['games_per_s_all_threads']:,.0f} games/s ({all_threads} threads)")

    g = generate_games(n_games, seed=2)
    validate_games(g[:100])
    legal_move_masks(g[:100])
    out["validate_games_games_per_s"] = n_games / best_time(lambda: validate_games(g), repeats)
    m = min(n_games, 200_000)  # masks are 3840 bytes per game
    out["legal_move_masks_games_per_s"] = m / best_time(lambda: legal_move_masks(g[:m]), repeats)
    return out


def bench_perft(depth, repeats):
    engine.perft(3)
    seconds = best_time(lambda: engine.perft(depth), repeats)
    leaves = engine.perft(depth)
    log(f"perft({depth}) = {leaves} in {seconds:.3f} s")
    return {"depth": depth, "leaves": leaves, "seconds": seconds, "leaves_per_s": leaves / seconds}


def bench_open_spiel(seconds):
    import pyspiel

    game = pyspiel.load_game("othello")
    rng = np.random.default_rng(0)
    n, moves = 0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        state = game.new_initial_state()
        while not state.is_terminal():
            legal = state.legal_actions()  # 64 = pass, the only action when forced
            state.apply_action(legal[rng.integers(len(legal))])
            moves += 1
        n += 1
    return {"games_per_s": n / (time.perf_counter() - start), "games": n,
            "version": getattr(pyspiel, "__version__", None) or _dist_version("open_spiel")}


def bench_rust_reversi(seconds):
    import rust_reversi

    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        board = rust_reversi.Board()
        while not board.is_game_over():
            if board.is_pass():
                board.do_pass()
            else:
                board.do_move(board.get_random_move())
        n += 1
    return {"games_per_s": n / (time.perf_counter() - start), "games": n,
            "version": _dist_version("rust-reversi")}


def bench_pgx(batch, repeats):
    import jax
    import jax.numpy as jnp
    import pgx

    env = pgx.make("othello")
    init = jax.vmap(env.init)
    step = jax.vmap(env.step)

    @jax.jit
    def play(key):
        key, sub = jax.random.split(key)
        state = init(jax.random.split(sub, batch))

        def cond(c):
            return ~c[0].terminated.all()

        def body(c):
            state, key = c
            key, sub = jax.random.split(key)
            logits = jnp.where(state.legal_action_mask, 0.0, -jnp.inf)
            action = jax.random.categorical(sub, logits, axis=-1)
            return step(state, action), key

        state, _ = jax.lax.while_loop(cond, body, (state, key))
        return state.terminated.sum()

    key = jax.random.PRNGKey(0)
    t = time.perf_counter()
    assert int(play(key)) == batch  # compile + warm-up
    compile_s = time.perf_counter() - t
    seconds = best_time(lambda: play(key).block_until_ready(), repeats)
    return {"games_per_s": batch / seconds, "batch": batch, "compile_and_first_run_s": compile_s,
            "version": pgx.__version__, "jax": jax.__version__}


def _dist_version(name):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--games", type=int, default=2_000_000, help="games per timing of ours")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--perft-depth", type=int, default=10)
    p.add_argument("--peer-seconds", type=float, default=3.0, help="time per one-at-a-time peer")
    p.add_argument("--pgx-batch", type=int, default=16384)
    p.add_argument("--no-peers", action="store_true")
    args = p.parse_args()
    # A zero count would print placeholder figures (0 games/s, Infinity seconds), not an error.
    if min(args.games, args.repeats, args.pgx_batch) < 1 or args.peer_seconds <= 0:
        p.error("--games, --repeats, --pgx-batch and --peer-seconds must be positive")
    if not 0 <= args.perft_depth <= 60:
        p.error(f"--perft-depth must lie in 0..60, got {args.perft_depth}")

    result = {
        "machine": {"cpus": os.cpu_count(), "numba_threads": numba.config.NUMBA_NUM_THREADS,
                    "python": platform.python_version(), "numba": numba.__version__,
                    "processor": platform.processor() or platform.machine()},
        "generate_games": bench_ours(args.games, args.repeats),
        "perft": bench_perft(args.perft_depth, args.repeats),
        "peers": {},
    }
    if not args.no_peers:
        peers = {
            "open_spiel": lambda: bench_open_spiel(args.peer_seconds),
            "rust_reversi": lambda: bench_rust_reversi(args.peer_seconds),
            "pgx": lambda: bench_pgx(args.pgx_batch, max(1, args.repeats - 1)),
        }
        ours = result["generate_games"]
        for name, fn in peers.items():
            try:
                r = fn()
            except ImportError as e:
                r = {"error": f"not installed ({e})"}
            except Exception as e:  # a peer's failure must not hide the other figures
                r = {"error": f"{type(e).__name__}: {e}"}
            if "games_per_s" in r:
                r["ratio_to_ours_1_thread"] = r["games_per_s"] / ours["games_per_s_1_thread"]
                r["ratio_to_ours_all_threads"] = r["games_per_s"] / ours["games_per_s_all_threads"]
                log(f"{name}: {r['games_per_s']:,.0f} games/s")
            else:
                log(f"{name}: {r['error']}")
            result["peers"][name] = r
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
