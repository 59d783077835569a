"""Random numbers for the Othello code: splitmix64 streams and exactly uniform draws.

splitmix64 (Steele, Lea & Flood 2014) is a 64-bit state advanced by a constant
and mixed on output. It is tiny (one uint64 per stream) and splittable: the
random-game corpus gives every game its own stream derived from ``(seed, game
index)`` (:func:`game_state`), so a corpus does not depend on the thread count,
and each env row keeps its own state (``seed_state``) so that env ``i`` of the
vector env reset with seed ``s`` plays like a single env reset with ``s + i``.

Every function here but :func:`seed_state` is ``@njit(inline="always")``: it
works on plain uint64 scalars and is inlined into the game and turn kernels.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from othello_env.engine import U1, lowest_square, popcount

GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # the stream increment
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_TWO32 = np.uint64(1 << 32)
_M64 = (1 << 64) - 1


@njit(cache=True, inline="always")
def mix64(z):
    """splitmix64's output function: a bijective mix of the 64 bits of ``z``."""
    z = (z ^ (z >> _S30)) * MIX1
    z = (z ^ (z >> _S27)) * MIX2
    return z ^ (z >> _S31)


def seed_state(seed: int) -> np.uint64:
    """Initial RNG state for a seed: splitmix64's output for ``seed`` (mod 2**64), in pure Python."""
    z = (int(seed) * int(GOLDEN) + int(GOLDEN)) & _M64
    z = ((z ^ (z >> 30)) * int(MIX1)) & _M64
    z = ((z ^ (z >> 27)) * int(MIX2)) & _M64
    return np.uint64(z ^ (z >> 31))


@njit(cache=True, inline="always")
def game_state(seed, index):
    """Initial state of game ``index``'s stream in the corpus of ``seed`` (both uint64)."""
    return mix64(mix64(seed + GOLDEN) ^ mix64(index + GOLDEN))


@njit(cache=True, inline="always")
def next_random(state):
    """One splitmix64 step: ``(new state, 64 random bits)``."""
    s = state + GOLDEN
    return s, mix64(s)


@njit(cache=True, inline="always")
def below(state, k):
    """Uniform integer in [0, k), k >= 1, by Lemire's multiply-and-reject: ``(value, new state)``."""
    ku = np.uint64(k)
    state += GOLDEN
    m = (mix64(state) >> _S32) * ku
    low = m & _LOW32
    if low < ku:
        threshold = (_TWO32 - ku) % ku  # 2**32 mod k
        while low < threshold:
            state += GOLDEN
            m = (mix64(state) >> _S32) * ku
            low = m & _LOW32
    return np.int64(m >> _S32), state


@njit(cache=True, inline="always")
def random_square(state, moves):
    """``(square, new state)``: a uniformly random set bit of the non-zero board ``moves``.

    The one sampler of random play: the corpus (``games.generate_games``) and the
    env's random opponent both draw with it.
    """
    k, state = below(state, popcount(moves))
    for _ in range(k):
        moves &= moves - U1  # drop the k lowest squares
    return lowest_square(moves), state
