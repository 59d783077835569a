"""Othello: unseen- and seen-length top1_err of every position scheme, each loss, raw and EMA.

Reads the per-run tables that ``lgagent sweep`` prints (``run weights seen_err unseen_err
unseen_sep``), of docs/RESULTS.md section 2 (learned, none, rope: next loss in
study_othello_runs.txt, legal loss in study_othello_legal_runs.txt and
study_othello_legal_pos_runs.txt) and section 7 (alibi, learned-random, rope-random: the
two sweeps' logs oth_pos2_next_runs.txt and oth_pos2_legal_runs.txt). The same seed trains on
the same games whatever the scheme, so the differences between schemes are paired by seed.
Prints, per loss and weights: each scheme's mean over seeds 0-2 with a 95% t interval, then
each new scheme minus learned, none and rope, paired by seed, with a 95% t interval.

    python docs/scripts/pos_schemes_othello.py [RESULTS_DIR]     (default: docs/results)
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

ROW = re.compile(r"^pos=(\S+)__seed=(\d+)\s+(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$")
FILES = {"next": ["study_othello_runs.txt", "oth_pos2_next_runs.txt"],
         "legal": ["study_othello_legal_runs.txt", "study_othello_legal_pos_runs.txt",
                   "oth_pos2_legal_runs.txt"],
         "next+dropout0.1": ["oth_pos2_dropout_runs.txt"]}
OLD, NEW = ("learned", "none", "rope"), ("alibi", "learned-random", "rope-random")
WEIGHTS = ("raw", "ema_0.995")


def read(root: Path) -> dict:
    """{(loss, pos, weights, split): {seed: top1_err}}"""
    out = defaultdict(dict)
    for loss, names in FILES.items():
        for name in names:
            path = root / name
            if not path.exists():
                print(f"# missing: {path}")
                continue
            for line in path.read_text().splitlines():
                m = ROW.match(line)
                if m:
                    pos, seed, w, seen, unseen, _ = m.groups()
                    out[(loss, pos, w, "seen")][int(seed)] = float(seen)
                    out[(loss, pos, w, "unseen")][int(seed)] = float(unseen)
    return out


def interval(x: np.ndarray, sign: str = "") -> str:
    if len(x) < 2:
        return f"{x.mean():{sign}.4f} (n={len(x)})"
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    m = x.mean()
    return f"{m:{sign}.4f} [{m - half:{sign}.4f}, {m + half:{sign}.4f}]"


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results")
    data = read(root)
    for loss in FILES:
        for w in WEIGHTS:
            if loss == "next+dropout0.1":
                continue
            print(f"\n## loss={loss}, weights={w}: top1_err, mean over seeds [95% t interval]")
            print(f"{'pos':15s} {'seeds':6s} {'seen':28s} {'unseen':28s}")
            for pos in OLD + NEW:
                cells = []
                for split in ("seen", "unseen"):
                    v = data.get((loss, pos, w, split), {})
                    cells.append(interval(np.array([v[s] for s in sorted(v)])) if v else "-")
                seeds = "".join(str(s) for s in sorted(data.get((loss, pos, w, "unseen"), {})))
                print(f"{pos:15s} {seeds:6s} {cells[0]:28s} {cells[1]:28s}")
            print("# unseen top1_err, new scheme minus old, paired by seed [95% t interval]")
            for pos in NEW:
                a = data.get((loss, pos, w, "unseen"), {})
                parts = []
                for ref in OLD:
                    b = data.get((loss, ref, w, "unseen"), {})
                    common = sorted(set(a) & set(b))
                    parts.append(f"- {ref}: " + (interval(np.array([a[s] - b[s] for s in common]), "+")
                                                 if len(common) >= 2 else "-"))
                print(f"{pos:15s} " + "; ".join(parts))
    print("\n## the rerun arm (--set dropout=0.1, which is the tiny preset's own value: the same runs again) minus the original runs, paired by seed")
    for w in WEIGHTS:
        for pos in ("learned", "learned-random"):
            for split in ("seen", "unseen"):
                a = data.get(("next+dropout0.1", pos, w, split), {})
                b = data.get(("next", pos, w, split), {})
                common = sorted(set(a) & set(b))
                if len(common) < 2:
                    print(f"{w:10s} {pos:15s} {split:7s} -")
                    continue
                print(f"{w:10s} {pos:15s} {split:7s} rerun "
                      f"{interval(np.array([a[s] for s in common]))}  "
                      f"effect {interval(np.array([a[s] - b[s] for s in common]), '+')}")
    print("\n## legal loss minus next-token loss, paired by seed [95% t interval]")
    for w in WEIGHTS:
        for pos in OLD + NEW:
            cells = []
            for split in ("seen", "unseen"):
                a = data.get(("legal", pos, w, split), {})
                b = data.get(("next", pos, w, split), {})
                common = sorted(set(a) & set(b))
                cells.append(interval(np.array([a[s] - b[s] for s in common]), "+")
                             if len(common) >= 2 else "-")
            print(f"{w:10s} {pos:15s} seen {cells[0]:28s} unseen {cells[1]}")
    print("\n## EMA 0.995 minus raw, unseen top1_err, paired by seed [95% t interval]")
    for loss in FILES:
        for pos in OLD + NEW:
            a = data.get((loss, pos, "ema_0.995", "unseen"), {})
            b = data.get((loss, pos, "raw", "unseen"), {})
            common = sorted(set(a) & set(b))
            if len(common) >= 2:
                print(f"{loss:16s} {pos:15s} "
                      f"{interval(np.array([a[s] - b[s] for s in common]), '+')}")


if __name__ == "__main__":
    main()
