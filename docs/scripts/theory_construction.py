"""The hand-built model's margin against length, exhaustively (docs/THEORY.md).

python docs/scripts/theory_construction.py > docs/results/theory_construction.txt
"""
import time

import torch

from agents.construct import exhaustive_check, set_complement_model

torch.set_num_threads(1)
c = 1.0
print("# lgagent: agents.construct.set_complement_model(v, n_embd, c=1.0) checked exhaustively")
print("# (every set of every size 1..v-1, every last token) through the real GPT forward (float32).")
print("# margin = lowest valid (absent) logit - highest invalid (present) logit; min = max over inputs")
print("# at every length here, so one number per length. c/s law: margin = c/s (beta = 0);")
print("# n_embd = v - 1 (beta = c): margin c + beta = 2c at s = 1, c/s at s >= 2.")
for v in (4, 6, 8, 10, 12, 14, 16):
    for n in (2 * v - 1, v - 1):
        t0 = time.time()
        r = exhaustive_check(set_complement_model(v, n_embd=n, c=c), v)
        law = [c / e["length"] if e["length"] > 1 or n >= 2 * v - 2 else 2 * c
               for e in r["per_length"]]
        worst = max(abs(e["margin_min"] - w) for e, w in zip(r["per_length"], law))
        worst = max(worst, max(abs(e["margin_max"] - e["margin_min"]) for e in r["per_length"]))
        ms = " ".join(f"{e['margin_min']:.4f}" for e in r["per_length"])
        print(f"v={v:2d} n_embd={n:2d} inputs={r['inputs']:7d} separated={r['separated']} "
              f"max |margin - law| = {worst:.1e} ({time.time() - t0:.1f} s)\n"
              f"    margin by length 1..{v - 1}: {ms}", flush=True)
