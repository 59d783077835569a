"""Trained minimal models (setcomp-1l, legal loss) on lengths 1 and 2 only: how far they
generalize, their margin against length next to the 2/s law, and their balance.

Runs (one CPU thread, about 20 s each):
  for v in 6 8 12; do for seed in 0 1; do
    lgagent train --env setcomp --vocab-size $v --train-max-len 2 --lr 1e-2 --steps 3000 \
      --batch-size 256 --eval-every 0 --num-threads 1 --seed $seed --no-progress \
      --out runs/len12-v$v-s$seed
  done; done
  python docs/scripts/theory_len12.py runs/len12-v*-s* > docs/results/theory_len12.txt
"""
import sys

import torch

from agents.checkpoint import load, model_from_checkpoint
from agents.construct import exhaustive_check
from train.analysis.theory import format_balance, logit_balance

torch.set_num_threads(1)
print("# every input (every set, every last token) of every length, exhaustively; margin =")
print("# lowest valid - highest invalid logit; law = 2 * margin_min(2) / s (balanced, uniform")
print("# attention); min/law < 1 means the margin decays faster than 2/s")
for run in sys.argv[1:]:
    ckpt = load(f"{run}/checkpoint.pt")
    cfg = ckpt["config"]
    v = cfg["vocab_size"]
    model = model_from_checkpoint(ckpt, "raw")
    res = exhaustive_check(model, v)
    b = logit_balance(model, v)
    per = res["per_length"]
    m2 = per[1]["margin_min"]
    print(f"\n{run}: v={v} seed={cfg['seed']} n_embd={ckpt['model_config']['n_embd']} step "
          f"{ckpt['step']}, trained on lengths 1..{cfg['train_max_len']}; {res['inputs']} inputs, "
          f"all separated: {res['separated']}")
    print(f"  balance: {format_balance(b)}")
    print("  len  sep_frac  margin_min  margin_mean  min*len  law=2*m2/s  min/law")
    for e in per:
        s = e["length"]
        law = 2 * m2 / s
        print(f"  {s:3d}  {e['sep_frac']:8.4f}  {e['margin_min']:10.3f}  {e['margin_mean']:11.3f}"
              f"  {e['margin_min'] * s:7.3f}  {law:10.3f}  {e['margin_min'] / law:7.3f}")
