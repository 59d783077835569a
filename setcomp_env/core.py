"""The set complement task as pure NumPy functions (no torch, no Gymnasium).

A sequence is a row of distinct tokens from ``[0, vocab_size)``. After seeing
its first ``p + 1`` tokens, the target is the uniform distribution over the
``vocab_size - (p + 1)`` tokens not seen yet: :func:`complement_masks` gives
that set as a boolean mask.
"""

from __future__ import annotations

import numbers

import numpy as np


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``low..high`` (no upper bound when None); ValueError otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return int(value)


def sample_sequences(n: int, length: int, vocab_size: int, seed=0) -> np.ndarray:
    """Sample ``n`` sequences of ``length`` distinct tokens in uniformly random order.

    Each row is the first ``length`` entries of an independent uniform random
    permutation of ``0..vocab_size-1``, so every ordered selection of distinct
    tokens is equally likely.

    Args:
        n: number of sequences (>= 0).
        length: tokens per sequence, ``0 <= length <= vocab_size``.
        vocab_size: number of distinct tokens (>= 1).
        seed: anything :func:`numpy.random.default_rng` accepts (an int, a
            ``SeedSequence``); the same seed gives the same array.

    Returns:
        int64 array of shape ``(n, length)``.
    """
    n = check_int("n", n, 0)
    length = check_int("length", length, 0)
    vocab_size = check_int("vocab_size", vocab_size, 1)
    if length > vocab_size:
        raise ValueError(
            f"length ({length}) cannot exceed vocab_size ({vocab_size}): tokens are distinct")
    if isinstance(seed, np.random.Generator):
        raise ValueError("seed must be an int or a SeedSequence, not a Generator (determinism)")
    rng = np.random.default_rng(seed)
    # rng.permuted shuffles each row independently (exact, no ties), (n, vocab_size) -> prefix
    rows = np.broadcast_to(np.arange(vocab_size, dtype=np.int64), (n, vocab_size))
    return np.ascontiguousarray(rng.permuted(rows, axis=1)[:, :length])


def complement_masks(seqs, vocab_size: int) -> np.ndarray:
    """Absent-token masks for every prefix of every sequence.

    Args:
        seqs: integer array ``(n, length)`` with values in ``[0, vocab_size)``.
        vocab_size: number of tokens (>= 1).

    Returns:
        bool array ``(n, length, vocab_size)``; ``[i, p, k]`` is True iff token
        ``k`` does not occur in ``seqs[i, :p + 1]``.
    """
    vocab_size = check_int("vocab_size", vocab_size, 1)
    seqs = np.asarray(seqs)
    if seqs.ndim != 2:
        raise ValueError(f"seqs must be a 2-D array (n, length), got shape {seqs.shape}")
    if seqs.size and not np.issubdtype(seqs.dtype, np.integer):
        raise ValueError(f"seqs must hold integers, got dtype {seqs.dtype}")
    if seqs.size and (seqs.min() < 0 or seqs.max() >= vocab_size):
        raise ValueError(
            f"seqs values must lie in [0, {vocab_size}), got min {seqs.min()} max {seqs.max()}")
    n, length = seqs.shape
    # one_hot[i, p, k] = seqs[i, p] == k; a running OR along p gives "seen so far"
    seen = np.zeros((n, length, vocab_size), dtype=np.bool_)
    if length:
        ii, pp = np.indices((n, length))
        seen[ii, pp, seqs.astype(np.intp)] = True
        np.logical_or.accumulate(seen, axis=1, out=seen)
    return ~seen
