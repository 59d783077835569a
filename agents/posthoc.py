"""Post-hoc averaging: EMA, BEMA and tail averages computed from saved weight snapshots.

Every scheme here is a recursive average of the weights theta_t (t = the global step: the
weights after t optimizer steps, theta_0 the initial ones), described by a
:class:`Schedule`:

* at the anchor step a: m = theta_a, and theta_0' (BEMA's anchor) = theta_a, or the
  initial weights theta_0 with ``theta0="initial"``;
* at each update step u > a: m <- (1 - beta_u) m + beta_u theta_u;
* the averaged weights at step E: theta_E while E < a; m after the updates up to E; and for
  a corrected scheme (BEMA) m + alpha_u* (theta_u* - theta_0') at the last update u* <= E
  (m itself before the first update).

:func:`ema_schedule` (lgagent's online :class:`agents.averaging.EMA`: theta_1 copied, then
beta = 1 - decay at every step), :func:`uniform_schedule` (the running mean of theta_F ..
theta_E: beta = 1 / (u - F + 1)) and :func:`bema_schedule` (lgagent's online
:class:`agents.averaging.BEMA` and the references' formulas, through
:func:`agents.averaging.bema_coefficients`) build them.

:func:`average` replays a schedule over snapshots (``{step: weights}``, any set of steps).
Where an update step or the anchor falls between two snapshots A < B, theta_t is taken
as the straight line between them, theta_t = (1 - lam) theta_A + lam theta_B with lam =
(t - A) / (B - A); the updates of one segment are folded into one linear combination
m <- c_m m + c_A theta_A + c_B theta_B (coefficients in float64, tensors in float32).
A segment with a single update at its end (snapshots at every update step, e.g. at every
step, or every phi steps for BEMA at cadence phi) is computed with exactly the tensor
operations of the online averagers (``_foreach_lerp_``, then the bias term's two
``_foreach_add_``), so on the same device the replay equals the online average bit for bit.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch

from agents.averaging import bema_coefficients

Updates = Callable[[int, int], Iterable[tuple[int, float, float]]]


@dataclass(frozen=True)
class Schedule:
    """A recursive average (see the module doc). ``updates(lo, hi)`` yields ``(u, beta,
    alpha)`` for the update steps lo < u <= hi in order (alpha is ignored unless
    ``corrected``)."""

    anchor: int
    updates: Updates
    theta0: str = "anchor"  # "anchor": theta_0' = theta_a; "initial": theta_0' = theta_0
    corrected: bool = False


def ema_schedule(decay: float) -> Schedule:
    """lgagent's EMA: theta_1 copied (beta_1 = 1), then ema = decay ema + (1 - decay) theta."""
    decay = float(decay)

    def updates(lo, hi):
        for u in range(max(lo, 0) + 1, hi + 1):
            yield u, (1.0 if u == 1 else 1.0 - decay), 0.0
    return Schedule(0, updates)


def uniform_schedule(start: int) -> Schedule:
    """The mean of theta_start .. theta_E (every step), SWA-style: beta_u = 1 / (u - start + 1)."""
    def updates(lo, hi):
        for u in range(max(lo, start) + 1, hi + 1):
            yield u, 1.0 / (u - start + 1), 0.0
    return Schedule(start, updates)


def bema_schedule(*, ema_power=0.5, bias_power=0.2, lag=10.0, multiplier=1.0, burn_in=0,
                  update_every=1, clock="since-snapshot", theta0="burn-in", anchor="tau",
                  min_ema_multiplier=0.0) -> Schedule:
    """BEMA as :class:`agents.averaging.BEMA` computes it online (same arguments): anchor
    a = burn_in (``anchor="tau"``) or burn_in + 1 (``"tau+1"``), updates at a + k phi."""
    a = burn_in + (anchor == "tau+1")
    phi = update_every

    def updates(lo, hi):
        k = max(0, (max(lo, a) - a) // phi) + 1
        while a + k * phi <= hi:
            u = a + k * phi
            beta, alpha = bema_coefficients(
                clock=clock, k=k, step=u, ema_power=ema_power, bias_power=bias_power, lag=lag,
                multiplier=multiplier, burn_in=burn_in, min_ema_multiplier=min_ema_multiplier)
            yield u, beta, alpha
            k += 1
    return Schedule(a, updates, theta0="initial" if theta0 == "initial" else "anchor",
                    corrected=True)


def _combine(terms) -> list[torch.Tensor]:
    """sum_i c_i T_i for ``[(c_i, tensors_i), ...]`` (terms with c = 0 skipped)."""
    terms = [(c, t) for c, t in terms if c != 0.0]
    if not terms:
        raise ValueError("nothing to combine")
    c0, t0 = terms[0]
    out = torch._foreach_mul([x.clone() for x in t0], c0) if c0 != 1.0 else [x.clone() for x in t0]
    for c, t in terms[1:]:
        torch._foreach_add_(out, t, alpha=c)
    return out


def average(schedule: Schedule | None, load: Callable[[int], list[torch.Tensor]],
            steps: list[int], at: list[int]) -> Iterator[tuple[int, list[torch.Tensor]]]:
    """The averaged weights of ``schedule`` at each step of ``at`` (snapshot steps, in order):
    yields ``(step, tensors)``. ``load(step)`` returns the snapshot's float32 tensors (a fixed
    order) for each step of ``steps`` (sorted). ``schedule`` None: the raw weights.
    ValueError (one line) when the scheme needs weights before the first snapshot."""
    steps, at = sorted(steps), sorted(set(at))
    for e in at:
        if e not in steps:
            raise ValueError(f"step {e} has no snapshot")
    if schedule is None:
        for e in at:
            yield e, load(e)
        return
    a = schedule.anchor
    cache: dict[int, list[torch.Tensor]] = {}

    def get(step):  # the last few snapshots stay loaded
        if step not in cache:
            if len(cache) > 3:
                cache.pop(next(iter(cache)))
            cache[step] = load(step)
        return cache[step]

    def interp(t):
        if t in steps:
            return get(t)
        i = bisect.bisect_left(steps, t)
        if i == 0 or i == len(steps):
            raise ValueError(f"the scheme needs the weights at step {t}; the snapshots cover "
                             f"steps {steps[0]}..{steps[-1]}")
        A, B = steps[i - 1], steps[i]
        lam = (t - A) / (B - A)
        return _combine([(1.0 - lam, get(A)), (lam, get(B))])

    theta0 = m = out = None
    pending = iter(at)
    target = next(pending, None)
    # before the anchor: the raw weights
    while target is not None and target < a:
        yield target, get(target)
        target = next(pending, None)
    if target is None:
        return
    if a < steps[0] or a > steps[-1]:
        interp(a)  # raises: outside the snapshots
    m = [x.clone() for x in interp(a)]
    theta0 = ([x.clone() for x in interp(0)] if schedule.theta0 == "initial" else
              [x.clone() for x in m])
    pos = bisect.bisect_right(steps, a)  # the first snapshot after the anchor
    prev = a  # m holds the average at step ``prev``
    if target == a:
        yield a, [x.clone() for x in m]
        target = next(pending, None)
    while target is not None:
        B = steps[pos]
        seg_a = steps[pos - 1]  # the snapshot before B (before the anchor when a lies inside)
        ups = list(schedule.updates(prev, B))
        if len(ups) == 1 and ups[0][0] == B:  # one update at a snapshot: the online operations
            _, beta, alpha = ups[0]
            thb = get(B)
            if beta == 1.0:
                torch._foreach_copy_(m, thb)
            else:
                torch._foreach_lerp_(m, thb, beta)
            if schedule.corrected:
                out = [x.clone() for x in m]
                torch._foreach_add_(out, thb, alpha=alpha)
                torch._foreach_add_(out, theta0, alpha=-alpha)
        elif ups:  # fold the segment's updates into m = cm m + cA theta_A + cB theta_B
            cm, ca, cb = 1.0, 0.0, 0.0
            last = None
            for u, beta, alpha in ups:
                lam = (u - seg_a) / (B - seg_a)
                cm, ca, cb = ((1 - beta) * cm, (1 - beta) * ca + beta * (1 - lam),
                              (1 - beta) * cb + beta * lam)
                last = (alpha, lam)
            tha, thb = get(seg_a), get(B)
            new_m = _combine([(cm, m), (ca, tha), (cb, thb)])
            if schedule.corrected:
                alpha, lam = last
                out = _combine([(1.0, new_m), (alpha * (1 - lam), tha), (alpha * lam, thb),
                                (-alpha, theta0)])
            m = new_m
        prev = B
        if B == target:
            yield B, [x.clone() for x in (out if schedule.corrected and out is not None else m)]
            target = next(pending, None)
        pos += 1
