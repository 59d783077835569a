"""Does imbalance at lengths 1 and 2 predict failure at longer lengths? (docs/THEORY.md)

Measures train.analysis.theory.logit_balance (``imbalance``: 0 = balanced) on the raw
weights of every one-layer attention-only set complement model at hand and tests whether it
predicts failure to separate:

* group "study": the finished trials of the set complement random search
  (runs/avg-setcomp/trial_*/ with a result.json) whose model is preset setcomp-1l with
  n_layer 1 (attention only; the search varies width, heads, norm, lr, train_max_len, ...).
  They train on lengths 1..train_max_len; failure = the raw weights' held-out ``sep_acc`` on
  the unseen lengths (from the trial's result.json: 13,312 held-out positions, not
  exhaustive) is below 1; the graded outcome is 1 - that sep_acc.
* group "thresholds": the models of docs/scripts/theory_thresholds.py (trained on every
  length, so none is unseen); failure = some input of length >= 3 is not separated
  (exhaustive, from their theory.json); graded: the share of length >= 3 inputs not separated.

For each group (and each restricted to the models that separate every input of lengths 1
and 2, the theorem's setting): the Spearman rank correlation of imbalance with the failure
indicator and with the graded outcome, each with a 95% percentile bootstrap interval (5,000
resamples, seed 0) and scipy's p-value; the AUC of imbalance for failure (Mann-Whitney) with
a bootstrap interval; and a logistic fit of failure on log10(imbalance) (statsmodels, Wald
95% interval of the slope), when both outcomes occur and the fit converges.

  python docs/scripts/theory_balance.py > docs/results/theory_balance.txt
"""
from __future__ import annotations

import glob
import json
import math
import os
import sys

import numpy as np

STUDY = "runs/avg-setcomp"
B, SEED = 5000, 0


def study_rows() -> list[dict]:
    import torch

    from agents.checkpoint import load, model_from_checkpoint
    from train.analysis.theory import logit_balance

    torch.set_num_threads(1)
    rows = []
    for d in sorted(glob.glob(f"{STUDY}/trial_*")):
        if not os.path.exists(f"{d}/result.json") or not os.path.exists(f"{d}/checkpoint.pt"):
            continue  # unfinished: never touched
        res = json.load(open(f"{d}/result.json"))
        c = res["config"]
        if c.get("preset") != "setcomp-1l" or c.get("n_layer") != 1:
            continue
        ckpt = load(f"{d}/checkpoint.pt")
        mc = ckpt["model_config"]
        if mc["n_layer"] != 1 or mc["mlp"]:
            continue
        unseen = res["eval"]["raw"].get("unseen")
        if not unseen:
            continue
        v = c["vocab_size"]
        b = logit_balance(model_from_checkpoint(ckpt, "raw"), v)
        rows.append({"name": os.path.basename(d), "v": v, "L": c["train_max_len"],
                     "n_embd": mc["n_embd"], "n_head": mc["n_head"], "norm": mc["norm"],
                     "imbalance": b["imbalance"], "sep12": b["sep_1"] == 1 and b["sep_2"] == 1,
                     "graded": 1 - unseen["sep_acc"], "fail": unseen["sep_acc"] < 1,
                     "ratio_21": b["ratio_21"]})
    return rows


def threshold_rows() -> list[dict]:
    rows = []
    for f in sorted(glob.glob("runs/thr2-v*/theory.json")):
        m = json.load(open(f))
        long = [e for e in m["per_length"] if e["length"] >= 3]
        n = sum(e["inputs"] for e in long)
        bad = sum((1 - e["sep_frac"]) * e["inputs"] for e in long)
        b = m["balance"]
        rows.append({"name": m["name"], "v": m["v"], "L": m["v"] - 1, "n_embd": m["n_embd"],
                     "n_head": 1, "norm": "none", "imbalance": b["imbalance"],
                     "sep12": b["sep_1"] == 1 and b["sep_2"] == 1, "graded": bad / n,
                     "fail": bad > 0, "ratio_21": b["ratio_21"]})
    return rows


def spearman(x, y) -> float:
    from scipy.stats import spearmanr

    if len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(spearmanr(x, y).statistic)


def auc(x, fail) -> float:
    pos, neg = x[fail], x[~fail]
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    gt = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    return float(gt)


def boot(stat, *cols) -> tuple[float, float]:
    rng = np.random.default_rng(SEED)
    n = len(cols[0])
    vals = []
    for _ in range(B):
        i = rng.integers(0, n, n)
        s = stat(*(c[i] for c in cols))
        if not math.isnan(s):
            vals.append(s)
    if len(vals) < B / 2:
        return math.nan, math.nan
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def logistic(x, fail) -> str:
    if fail.all() or not fail.any():
        return "not fitted (only one outcome)"
    import statsmodels.api as sm

    X = sm.add_constant(np.log10(x))
    try:
        fit = sm.Logit(fail.astype(float), X).fit(disp=0, maxiter=200)
    except Exception as e:  # noqa: BLE001 - perfect separation, singular matrix
        return f"not fitted ({type(e).__name__}: {str(e).splitlines()[0][:80]})"
    lo, hi = fit.conf_int()[1]
    if not fit.mle_retvals.get("converged", True) or not np.isfinite([lo, hi]).all():
        return "not fitted (did not converge: quasi-complete separation)"
    return (f"slope of log-odds(fail) per decade of imbalance {fit.params[1]:+.2f} "
            f"(95% Wald CI {lo:+.2f} .. {hi:+.2f}; p = {fit.pvalues[1]:.3g})")


def analyse(label: str, rows: list[dict]) -> None:
    print(f"\n## {label}: {len(rows)} models, {sum(r['fail'] for r in rows)} fail")
    if len(rows) < 3:
        print("too few models to test")
        return
    x = np.array([r["imbalance"] for r in rows])
    g = np.array([r["graded"] for r in rows])
    f = np.array([r["fail"] for r in rows])
    ok, bad = x[~f], x[f]
    print(f"imbalance median (range): separating {np.median(ok) if len(ok) else math.nan:.3f} "
          f"({ok.min() if len(ok) else math.nan:.3f}-{ok.max() if len(ok) else math.nan:.3f}), "
          f"failing {np.median(bad) if len(bad) else math.nan:.3f} "
          f"({bad.min() if len(bad) else math.nan:.3f}-{bad.max() if len(bad) else math.nan:.3f})")
    from scipy.stats import spearmanr

    for name, y in (("failure indicator", f.astype(float)), ("graded failure", g)):
        rho = spearman(x, y)
        if math.isnan(rho):
            print(f"Spearman(imbalance, {name}): undefined (a constant)")
            continue
        lo, hi = boot(spearman, x, y)
        p = spearmanr(x, y).pvalue
        print(f"Spearman(imbalance, {name}) = {rho:+.3f} (95% bootstrap CI {lo:+.3f} .. "
              f"{hi:+.3f}; p = {p:.3g})")
    a = auc(x, f)
    if not math.isnan(a):
        lo, hi = boot(auc, x, f)
        print(f"AUC of imbalance for failure = {a:.3f} (95% bootstrap CI {lo:.3f} .. {hi:.3f}; "
              "0.5 = no prediction)")
    print("logistic fit: " + logistic(x, f))


def main() -> None:
    study, thr = study_rows(), threshold_rows()
    print("# command: python docs/scripts/theory_balance.py > docs/results/theory_balance.txt")
    print("# imbalance = train.analysis.theory.logit_balance(model, v)['imbalance'] on the raw "
          "weights (0 = balanced)")
    print("# study: runs/avg-setcomp trials with preset setcomp-1l, n_layer 1 (finished ones); "
          "fail = held-out unseen-length sep_acc < 1 (result.json); graded = 1 - that sep_acc")
    print("# thresholds: runs/thr2-* (docs/scripts/theory_thresholds.py, trained on all "
          "lengths); fail = an input of length >= 3 not separated (exhaustive)")
    print("\n# name  v  train_max_len  n_embd  n_head  norm  imbalance  d2/d1  sep at 1,2  "
          "graded  fail")
    for r in study + thr:
        print(f"{r['name']:22s} v={r['v']:2d} L={r['L']:2d} n_embd={r['n_embd']:2d} "
              f"n_head={r['n_head']} {r['norm']:4s} {r['imbalance']:.3f} {r['ratio_21']:.3f} "
              f"{str(r['sep12']):5s} {r['graded']:.4f} {r['fail']}")
    for label, rows in (("study", study), ("thresholds", thr)):
        analyse(label, rows)
        analyse(f"{label}, only models separating every input of lengths 1 and 2",
                [r for r in rows if r["sep12"]])
    sys.stdout.flush()


if __name__ == "__main__":
    main()
