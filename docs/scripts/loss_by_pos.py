"""Othello: the legal loss minus the next-token loss, paired by seed, for each position scheme.

Reads the sweeps of docs/RESULTS.md section 2 (their results.json): the next-token runs of
runs/study-othello-pos (pos learned, rope, none) and the legal-loss runs of
runs/study-othello-legal (learned) and runs/study-othello-legal-pos (rope, none), seeds 0-2.
Prints, per scheme, weights and split, top1_err of each loss and the mean difference with a
95% t interval over the 3 seed pairs.

    python docs/scripts/loss_by_pos.py [RUNS_DIR]      (default: runs)
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats


def runs(path: Path) -> dict:
    return {r["name"]: r for r in json.loads(path.read_text())}


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs")
    nxt = runs(root / "study-othello-pos" / "results.json")
    leg = {**runs(root / "study-othello-legal" / "results.json"),
           **runs(root / "study-othello-legal-pos" / "results.json")}
    seeds = range(3)
    print(f"{'pos':8s} {'weights':10s} {'split':7s} {'next, seeds 0 1 2':24s} {'legal, seeds 0 1 2':24s} "
          "legal - next [95% CI]")
    for pos in ("learned", "rope", "none"):
        for w in ("raw", "ema_0.995"):
            for split in ("seen", "unseen"):
                a = np.array([nxt[f"pos={pos}__seed={s}"]["eval"][w][split]["top1_err"] for s in seeds])
                b = np.array([leg[f"pos={pos}__seed={s}"]["eval"][w][split]["top1_err"] for s in seeds])
                d = b - a
                half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
                print(f"{pos:8s} {w:10s} {split:7s} {' '.join(f'{x:.4f}' for x in a):24s} "
                      f"{' '.join(f'{x:.4f}' for x in b):24s} "
                      f"{d.mean():+.4f} [{d.mean() - half:+.4f}, {d.mean() + half:+.4f}]")


if __name__ == "__main__":
    main()
