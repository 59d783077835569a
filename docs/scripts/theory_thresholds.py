"""Dimension thresholds of the trained minimal model on set complement, measured exhaustively.

For v in {4, 6, 8, 10, 12, 16}, the minimal model (preset setcomp-1l: one layer, one head,
attention only, no LayerNorm, no positions, no biases; legal loss, the default) is trained
at widths around the proved bounds and checked on every input of every length
(agents.construct.exhaustive_check):

* embedding dimension: n_embd in v-2..v+1, the value dimension left at its default
  (head_dim = n_embd); proved bound n_embd >= v - 1, tight (the construction reaches it);
* value dimension: n_embd = 2v (wide enough), n_head 1, --head-dim k for k in v-3..v, so
  rank(W_O W_V) <= k; proved bound rank >= v - 2.

The training recipe is fixed in advance and the same for every run, the number of steps
by one rule stated before any result: steps = 500 v (2000 at v = 4 ... 8000 at v = 16),
lr 1e-2, batch 128, the default schedule (warmup, cosine to 10%), one thread each, at most
two runs at a time (the machine is shared).
Whether a run has converged is read from its training loss (``conv``: the relative change
of the mean training loss between the last two tenths of the run), not by tuning the
steps to reach a threshold.

One command reproduces everything (training skips runs that already have a checkpoint):

  python docs/scripts/theory_thresholds.py all --seeds 0 1 2 --jobs 2 \
      > docs/results/theory_thresholds.txt

or in parts: ``train --part embd|value`` (the runs under runs/thr2-*), then ``report``.
Each report row is also saved next to its checkpoint (``theory.json``: the exhaustive check
and train.analysis.theory.logit_balance), which docs/scripts/theory_balance.py reads.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

VS = (4, 6, 8, 10, 12, 16)
RUNS = Path("runs")
LR, BATCH = "1e-2", "128"


def steps_for(v: int) -> int:
    return 500 * v  # the rule, fixed before any result


def grid(part: str, seeds) -> list[dict]:
    """Every run of ``part`` ("embd", "value" or "all"), in the order they are trained: the
    widths at the bounds first, then one wider, then the next; last, for v <= 8 only, the
    proved-impossible ones (n_embd v - 2, value dim v - 3) as sanity checks. A wider run is
    skipped when a narrower width of the same v already separated every input for every
    seed (:func:`settled`): the threshold is the smallest such width either way."""
    out = []
    for i in range(4):
        for v in VS:
            for seed in seeds:
                embd = [(v + o, None) for o in (-1, 0, 1, -2)]
                value = [(2 * v, v + o) for o in (-2, -1, 0, -3)]
                for kind, widths in (("embd", embd), ("value", value)):
                    if part not in (kind, "all") or (i == 3 and v > 8):
                        continue
                    n, k = widths[i]
                    out.append(dict(v=v, n_embd=n, head_dim=k, seed=seed, name=(
                        f"thr2-v{v}-e{n}-s{seed}" if k is None else f"thr2-v{v}-e{n}-h{k}-s{seed}")))
    return out


def command(r: dict) -> list[str]:
    cmd = ["lgagent", "train", "--env", "setcomp", "--vocab-size", str(r["v"]),
           "--n-embd", str(r["n_embd"]), "--lr", LR, "--steps", str(steps_for(r["v"])),
           "--batch-size", BATCH, "--eval-every", "0", "--ckpt-every", "0", "--eval-size", "256",
           "--num-threads", "1", "--seed", str(r["seed"]), "--no-progress",
           "--out", str(RUNS / r["name"])]
    if r["head_dim"] is not None:
        cmd[10:10] = ["--n-head", "1", "--head-dim", str(r["head_dim"])]
    return cmd


def settled(r: dict, seeds) -> int | None:
    """A narrower width of r's v and kind at which every seed separated every input, if any."""
    key = "n_embd" if r["head_dim"] is None else "head_dim"
    narrower = [g for g in grid("all", seeds) if g["v"] == r["v"]
                and (g["head_dim"] is None) == (r["head_dim"] is None) and g[key] < r[key]]
    by = defaultdict(list)
    for g in narrower:
        cache = RUNS / g["name"] / "theory.json"
        by[g[key]].append(json.loads(cache.read_text())["separated"] if cache.exists() else None)
    ok = [w for w, res in by.items() if len(res) == len(seeds) and all(x is True for x in res)]
    return min(ok) if ok else None


def train_one(r: dict, seeds) -> str:
    out, logs = RUNS / r["name"], RUNS / "thr2-logs"
    if (logs / f"{r['name']}.done").exists():
        return f"{r['name']}: exists"
    if r["head_dim"] is not None or r["n_embd"] >= r["v"] - 1:  # (v - 2: a sanity check)
        w = settled(r, seeds)
        if w is not None and not (r["head_dim"] is not None and r["head_dim"] < r["v"] - 2):
            return f"{r['name']}: skipped (width {w} already separates for every seed)"
    logs.mkdir(parents=True, exist_ok=True)
    cmd = command(r) + (["--force"] if out.exists() else [])  # an unfinished run: start over
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(logs / f"{r['name']}.log", "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if rc == 0:
        (logs / f"{r['name']}.done").write_text("")
        # measure in the same slot (at most `jobs` processes at a time): theory.json
        rc = subprocess.call([sys.executable, __file__, "measure", json.dumps(r)], env=env)
    return f"{r['name']}: rc {rc}"


def train(runs: list[dict], jobs: int, seeds) -> None:
    with ThreadPoolExecutor(jobs) as pool:
        for msg in pool.map(lambda r: train_one(r, seeds), runs):
            print(msg, file=sys.stderr, flush=True)


def convergence(run: Path) -> tuple[float, float]:
    """(mean training loss over the last tenth, its relative change from the tenth before)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    loss = [s.value for s in acc.Scalars("loss/train")]
    n = max(1, len(loss) // 10)
    last, before = sum(loss[-n:]) / n, sum(loss[-2 * n:-n]) / n
    return last, (before - last) / abs(last)


def measure(r: dict) -> dict | None:
    """The exhaustive check and the balance of run ``r`` (cached in its theory.json)."""
    import torch

    from agents.checkpoint import load, model_from_checkpoint
    from agents.construct import exhaustive_check
    from train.analysis.theory import logit_balance

    run = RUNS / r["name"]
    cache = run / "theory.json"
    if cache.exists():
        return json.loads(cache.read_text())
    if not (RUNS / "thr2-logs" / f"{r['name']}.done").exists():
        return None
    torch.set_num_threads(1)
    ckpt = load(run / "checkpoint.pt")
    model = model_from_checkpoint(ckpt, "raw")
    res = exhaustive_check(model, r["v"])
    loss, conv = convergence(run)
    out = {**r, "steps": steps_for(r["v"]), "separated": res["separated"],
           "sep_frac": sum(e["sep_frac"] * e["inputs"] for e in res["per_length"]) / res["inputs"],
           "worst_margin": min(e["margin_min"] for e in res["per_length"]),
           "per_length": res["per_length"], "train_loss": loss, "conv": conv,
           "balance": logit_balance(model, r["v"])}
    cache.write_text(json.dumps(out, indent=1))
    return out


def threshold(rows: list[dict], key: str) -> tuple[str, list]:
    """The smallest width at which every seed separates every input, if every wider tried
    width does too (else it is reported as not monotone)."""
    by = defaultdict(list)
    for m in rows:
        by[m[key]].append(m["separated"])
    widths = sorted(by)
    ok = [w for w in widths if all(by[w])]
    if not ok:
        return "none tried", widths
    t = min(ok)
    mono = all(all(by[w]) for w in widths if w >= t)
    return (str(t) if mono else f"{t} (not monotone)"), widths


def report(seeds) -> None:
    rows = [m for r in grid("all", seeds) if (m := measure(r)) is not None]
    print("# command: python docs/scripts/theory_thresholds.py all --seeds "
          + " ".join(map(str, seeds)) + " --jobs 2 > docs/results/theory_thresholds.txt")
    print("# each run: lgagent train --env setcomp --vocab-size V --n-embd N [--n-head 1 "
          "--head-dim K] --lr 1e-2 --steps 500V --batch-size 128 --eval-every 0 "
          "--ckpt-every 0 --eval-size 256 --num-threads 1 --seed S --no-progress "
          "--out runs/thr2-...")
    print("# preset setcomp-1l, legal loss; checked on every input of every length 1..v-1 "
          "(agents.construct.exhaustive_check)")
    print("# conv = relative drop of the mean training loss between the last two tenths of the "
          "run (small = converged)")
    for part, key, label in (("embd", "n_embd", "embedding dimension (head_dim = n_embd)"),
                             ("value", "head_dim", "value dimension (n_embd = 2v, n_head 1)")):
        sub = [m for m in rows if (m["head_dim"] is None) == (part == "embd")]
        print(f"\n## {label}")
        print("# v  n_embd  head_dim  seed  steps: separated (every input)  share separated  "
              "worst margin  train loss  conv  imbalance")
        for m in sorted(sub, key=lambda m: (m["v"], m[key], m["seed"])):
            b = m["balance"]
            print(f"v={m['v']:2d} n_embd={m['n_embd']:2d} head_dim={str(m['head_dim']):4} "
                  f"seed={m['seed']} steps={m['steps']}: {str(m['separated']):5}  "
                  f"{m['sep_frac']:.4f}  {m['worst_margin']:+8.3f}  {m['train_loss']:.4f}  "
                  f"{m['conv']:+.4f}  {b['imbalance']:.3f}")
    print("\n## thresholds: the smallest width at which every seed separates every input")
    print("# derived bounds: n_embd >= v - 1 (proved; tight: the construction reaches it); "
          "value rank = rank(W_O W_V) <= head_dim, rank >= v - 2 (proved)")
    for v in VS:
        e = [m for m in rows if m["v"] == v and m["head_dim"] is None]
        h = [m for m in rows if m["v"] == v and m["head_dim"] is not None]
        if not e and not h:
            continue
        te, we = threshold(e, "n_embd") if e else ("not run", [])
        th, wh = threshold(h, "head_dim") if h else ("not run", [])
        agree_e = "agrees" if te == str(v - 1) else "does not agree"
        agree_h = "agrees" if th == str(v - 2) else "does not agree"
        seeds_e = sorted({m["seed"] for m in e})
        print(f"v={v:2d}: n_embd measured {te} (tried {we}, seeds {seeds_e}), bound {v - 1}: "
              f"{agree_e}; value dim measured {th} (tried {wh}), bound {v - 2}: {agree_h}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("train", "report", "all", "measure"))
    ap.add_argument("run", nargs="?", help="measure: the run (JSON of a grid entry)")
    ap.add_argument("--part", choices=("embd", "value", "all"), default="all")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    if a.what == "measure":
        measure(json.loads(a.run))
        return
    if a.what in ("train", "all"):
        train(grid(a.part, a.seeds), a.jobs, a.seeds)
    if a.what in ("report", "all"):
        report(a.seeds)


if __name__ == "__main__":
    main()
