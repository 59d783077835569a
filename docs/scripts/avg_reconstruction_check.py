"""How close the schemes replayed from snapshots come to the averages the trainer kept online.

For every run directory given that has both result.json (the trainer's online raw, EMA and BEMA
weights, evaluated) and averages.json (lgagent average --record), compares, on the same
held-out set, the online EMA of each decay with the recorded ``ema:decay=D`` and the online
BEMA with ``bema-run`` (the run's own BEMA settings replayed): the difference in top1_err at
seen and unseen lengths, and the replayed minus online difference as a share of the online
average's own effect (online - raw). With a snapshot at every update step the two are equal
bit for bit (docs/AVERAGING.md); with sparser snapshots the replay interpolates.

    python docs/scripts/avg_reconstruction_check.py RUN_DIR...
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def main() -> None:
    rows = defaultdict(list)  # (online name kind, split) -> [(replay - online, online - raw)]
    runs = 0
    for arg in sys.argv[1:]:
        run = Path(arg)
        if not (run / "result.json").exists() or not (run / "averages.json").exists():
            continue
        runs += 1
        res = json.loads((run / "result.json").read_text())
        rec = json.loads((run / "averages.json").read_text())["schemes"]
        cfg, ev = res["config"], res["eval"]
        decays = cfg["ema_decay"] if isinstance(cfg["ema_decay"], list) else [cfg["ema_decay"]]
        pairs = [("ema" if len(decays) == 1 else f"ema_{d:g}", f"ema:decay={d:g}", f"ema {d:g}")
                 for d in decays] + [("bema", "bema-run", "bema (lgagent, every step)")]
        for online, label, kind in pairs:
            if online not in ev or label not in rec:
                continue
            for split in ("seen", "unseen"):
                o = ev[online][split]["top1_err"]
                r = rec[label]["eval"][split]["top1_err"]
                raw = ev["raw"][split]["top1_err"]
                rows[(kind, split)].append((r - o, o - raw))
    print(f"# {runs} runs; top1_err of the replay from snapshots minus the online average")
    print(f"{'online average':28s} {'split':7s} {'n':>4s} {'mean diff':>10s} {'mean |diff|':>11s} "
          f"{'max |diff|':>10s} {'mean |online - raw|':>20s}")
    for (kind, split), v in sorted(rows.items()):
        d = np.array([x[0] for x in v])
        e = np.array([x[1] for x in v])
        print(f"{kind:28s} {split:7s} {len(d):4d} {d.mean():+10.4f} {np.abs(d).mean():11.4f} "
              f"{np.abs(d).max():10.4f} {np.abs(e).mean():20.4f}")


if __name__ == "__main__":
    main()
