"""Tiny embedding-dimension threshold probe: the trained minimal model (setcomp-1l, legal loss,
full lengths) at widths around the proved bound n_embd >= v - 1, checked exhaustively.

Runs (one CPU thread, 10-25 s each):
  for v in 4 6 8; do for n in $((v-2)) $((v-1)) $v $((v+2)); do for seed in 0 1; do
    lgagent train --env setcomp --vocab-size $v --n-embd $n --lr 1e-2 --steps 3000 \
      --batch-size 256 --eval-every 0 --num-threads 1 --seed $seed --no-progress \
      --out runs/thr-v$v-n$n-s$seed
  done; done; done
  python docs/scripts/theory_thresholds.py runs/thr-v*-n*-s* > docs/results/theory_thresholds.txt
"""
import sys
from collections import defaultdict

import torch

from agents.checkpoint import load, model_from_checkpoint
from agents.construct import exhaustive_check

torch.set_num_threads(1)
rows = defaultdict(list)
for run in sys.argv[1:]:
    ckpt = load(f"{run}/checkpoint.pt")
    v, n = ckpt["config"]["vocab_size"], ckpt["model_config"]["n_embd"]
    res = exhaustive_check(model_from_checkpoint(ckpt, "raw"), v)
    worst = min(e["margin_min"] for e in res["per_length"])
    frac = sum(e["sep_frac"] * e["inputs"] for e in res["per_length"]) / res["inputs"]
    rows[(v, n)].append((ckpt["config"]["seed"], res["separated"], frac, worst))
print("# v  n_embd  seed: separated every input (exhaustive), share of inputs separated, worst margin")
for (v, n), rs in sorted(rows.items()):
    for seed, ok, frac, worst in sorted(rs):
        print(f"v={v:2d} n_embd={n:2d} seed={seed}: {str(ok):5}  {frac:.4f}  {worst:+.3f}")
print("\n# smallest n_embd at which every seed separates every input; the proved bound is v - 1")
for v in sorted({v for v, _ in rows}):
    ok = [n for (w, n), rs in sorted(rows.items()) if w == v and all(r[1] for r in rs)]
    tried = sorted(n for w, n in rows if w == v)
    print(f"v={v:2d}: tried n_embd {tried}; smallest all-seeds-separate: "
          f"{min(ok) if ok else 'none'}; bound v - 1 = {v - 1}")
