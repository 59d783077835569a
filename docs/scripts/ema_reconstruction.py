"""How close an EMA reconstructed from sparse snapshots comes to the online one (docs/AVERAGING.md).

Usage: python docs/scripts/ema_reconstruction.py RUN_DIR   (a run with --snapshot-every 1)

For each EMA decay (horizon H = 1 / (1 - decay)) and snapshot spacing N, the EMA is replayed
from the snapshots at multiples of N only (agents.posthoc: straight lines between them) and
compared at steps 1000 and the last with the replay from every step (which equals the
trainer's online EMA bit for bit): the relative weight error |e_N - e| / |e|, the same error
relative to how far the EMA sits from the raw weights |e_N - e| / |e - theta|, and the
differences of unseen top1_err and illegal_mass on the run's held-out set.
"""

import math
import sys

import torch

from agents import posthoc
from agents.checkpoint import load
from train.analysis.average import Snapshots, evaluate_schemes


def norm(ts):
    return math.sqrt(sum(float((t.double() ** 2).sum()) for t in ts))


def main(run):
    torch.set_num_threads(1)
    ckpt = load(run)
    snaps = Snapshots(run, ckpt)
    last = snaps.steps[-1]
    at = [1000, last]
    print(f"run {run}: {len(snaps.steps)} snapshots, steps 0..{last}")
    print(f"{'decay':>6} {'H':>5} {'N':>4} {'step':>5} {'rel_err':>9} {'rel_to_move':>11} "
          f"{'d_unseen_top1':>13} {'d_unseen_mass':>13}")
    for decay in (0.99, 0.995, 0.999):
        sched = posthoc.ema_schedule(decay)
        exact = dict(posthoc.average(sched, snaps.load, snaps.steps, at))
        ref = {s: dict(zip(snaps.names, exact[s])) for s in at}
        ref_eval, _ = evaluate_schemes(ckpt, {"e": ref})
        for N in (10, 50, 100, 200, 500):
            steps = [s for s in snaps.steps if s % N == 0 or s == last]
            got = dict(posthoc.average(sched, snaps.load, steps, at))
            ev, _ = evaluate_schemes(ckpt, {"e": {s: dict(zip(snaps.names, got[s])) for s in at}})
            for s in at:
                diff = [a - b for a, b in zip(got[s], exact[s])]
                move = [a - b for a, b in zip(exact[s], snaps.load(s))]
                u, r = ev["e"][s]["unseen"], ref_eval["e"][s]["unseen"]
                print(f"{decay:>6} {round(1 / (1 - decay)):>5} {N:>4} {s:>5} "
                      f"{norm(diff) / norm(exact[s]):>9.2e} {norm(diff) / norm(move):>11.2e} "
                      f"{u['top1_err'] - r['top1_err']:>+13.4f} "
                      f"{u['illegal_mass'] - r['illegal_mass']:>+13.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
