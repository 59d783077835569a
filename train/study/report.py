"""``lgagent report``: what a sweep says about each factor, with 95% intervals and p-values.

Input: a sweep directory (``lgagent sweep``, grid or ``--trials``): every run
directory with a ``result.json`` counts as a finished trial; failed trials are
counted from the study (``study.db``) when there is one. Or a shared study
(``--storage URL``, a random search on several machines): its finished trials'
results come from the study itself (each keeps its ``result.json`` as the
``run_result`` user attribute), so no directory is needed; directories given
beside it add the training curves of the runs they hold (TensorBoard events).
Trials lost with a dead worker and retried, and surplus trials, are not failures.

Two kinds of effect, both on the *unseen-length* metrics (positions at or past
``train_max_len``):

* **Averaging, paired.** Every trial evaluates its raw, EMA and BEMA weights on
  the same held-out data, so ``ema - raw``, ``bema - raw`` and ``bema - ema``
  are paired differences within a trial: the estimate is their mean, with a
  paired t-test (``scipy.stats.ttest_rel``) for the p-value and interval. The
  same comparisons are repeated within each level of the learning-rate
  schedule, the loss and the norm (``ema - raw | loss=next``), because the
  research expects averaging to matter only where updates are noisy.
* **Factors, by regression.** Over the trials' raw weights, an ordinary least
  squares regression (statsmodels, HC3 heteroscedasticity-robust errors) of the
  metric on every factor that varies in the sweep: categorical ones (norm,
  loss, schedule, preset, pos) as treatment contrasts against a reference
  level (``norm=post`` is post minus pre, other factors held fixed), dropout
  rates per +0.1, the learning rate per doubling, sizes per doubling, the
  training length per token.

Every effect is ``{estimate, ci_low, ci_high, p_value, n, p_holm}``; ``p_holm``
is the Holm-adjusted p-value over all effects of the report (many effects are
tested at once; read ``p_value`` alone with that in mind).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from train.training.run import RESULT

# A sweep directory's files (written by train.training.run.run_to_result and train.study.search; read here,
# where they need no torch import): each finished run's result, and the Optuna study.
STUDY_DB = "study.db"
STUDY_NAME = "lgagent-sweep"
WEIGHTS = ("raw", "ema", "bema")  # the usual names; several EMA decays add ema_<decay>


def weights_in(results: list[dict]) -> list[str]:
    """Every weights name of the results, raw first, then in order of appearance."""
    names = {}
    for r in results:
        for w in (r.get("eval") or {}):
            names[w] = None
    return sorted(names, key=lambda w: (w != "raw", w == "bema"))
# (name in the report, split, metric key in the evaluation results); lower is better for all
# but sep_acc.
METRICS = (
    ("unseen.top1_err", "unseen", "top1_err"),
    ("unseen.sep_acc", "unseen", "sep_acc"),
    ("unseen.illegal_mass", "unseen", "illegal_mass"),
)
CATEGORICAL = {  # factor -> reference level (effects are other levels minus this one)
    "norm": "pre",
    "loss": "next",
    "schedule": "constant",
    "preset": None,  # None: the most common level
    "pos": None,
}
# numeric factor -> (column transform, unit in the effect's name)
NUMERIC = {
    "attn_dropout": (lambda x: x * 10, "per +0.1"),
    "resid_dropout": (lambda x: x * 10, "per +0.1"),
    "embd_dropout": (lambda x: x * 10, "per +0.1"),
    "dropout": (lambda x: x * 10, "per +0.1"),
    "lr": (np.log2, "per doubling"),
    "n_embd": (np.log2, "per doubling"),
    "n_head": (np.log2, "per doubling"),
    "n_layer": (lambda x: x, "per layer"),
    "batch_size": (np.log2, "per doubling"),
    "steps": (np.log2, "per doubling"),
    "train_max_len": (lambda x: x, "per token"),
    "ema_decay": (lambda x: -np.log10(1 - x), "per 10x horizon"),
}
SUBGROUPS = ("schedule", "loss", "norm")


def load_results(sweep_dir) -> list[dict]:
    """Every finished run's ``result.json`` under ``sweep_dir`` (sorted by run name)."""
    sweep_dir = Path(sweep_dir)
    out = []
    for path in sorted(sweep_dir.glob(f"*/{RESULT}")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError) as e:
            raise ValueError(f"{path} is not a readable result: {e}") from None
    return out


def failed_trials(sweep_dir) -> int:
    """Trials recorded as failed in the sweep's study (0 without a study; surplus not counted)."""
    db = Path(sweep_dir) / STUDY_DB
    if not db.exists():
        return 0
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{db.absolute()}")
    return _failed(study.get_trials(deepcopy=False))


def _failed(trials) -> int:
    """FAIL trials that are failures: not surplus, not lost with a dead worker and retried."""
    from optuna.trial import TrialState

    lost = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    return sum(1 for t in trials if t.state == TrialState.FAIL and t.number not in lost
               and not str(t.user_attrs.get("error", "")).startswith("surplus"))


def trial_name(number: int) -> str:
    """A random search's run directory of trial ``number`` (in its sweep's ``--out``)."""
    return f"trial_{number:04d}"


def study_results(url: str, dirs=()) -> tuple[list[dict], int, list[Path]]:
    """A shared study's ``(results, failed, run directories)`` (``lgagent report --storage``).

    The results of its COMPLETE trials (by trial number), from the study (``run_result``)
    or else from ``trial_NNNN/result.json`` under ``dirs`` or the trial's recorded
    ``--out`` when that is on this machine; the run directories found there (for
    :func:`curve`). BadInput when the storage cannot be opened; ValueError when it holds
    no sweep or a finished trial's result is nowhere.
    """
    import optuna
    from optuna.trial import TrialState

    from train.study.storage import rdb_storage, shown

    storage = rdb_storage(url)
    try:
        study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    except KeyError:
        raise ValueError(f"--storage {shown(url)} holds no lgagent sweep (no study "
                         f"{STUDY_NAME!r})") from None
    trials = study.get_trials(deepcopy=False)
    results, runs, missing = [], [], []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state != TrialState.COMPLETE:
            continue
        name = trial_name(t.number)
        places = [Path(d) for d in dirs] + ([Path(t.user_attrs["out"])] if "out" in t.user_attrs
                                            else [])
        local = next((d / name for d in places if (d / name / RESULT).is_file()), None)
        result = t.user_attrs.get("run_result")
        if result is None and local is not None:
            result = json.loads((local / RESULT).read_text())
        if result is None:
            missing.append(t.number)
            continue
        results.append(result)
        if local is not None:
            runs.append(local)
    if missing:
        raise ValueError(f"trial {', '.join(map(str, missing[:5]))}"
                         f"{' ...' if len(missing) > 5 else ''} finished, but its result is "
                         "neither in the study nor in a directory given (a sweep of an older "
                         "lgagent): give the sweep directories that hold it")
    return results, _failed(trials), runs


def _metric(result: dict, weights: str, split: str, key: str) -> float:
    ev = ((result.get("eval") or {}).get(weights) or {}).get(split) or {}
    v = ev.get(key)
    return float("nan") if v is None else float(v)


def table(results: list[dict]):
    """A pandas DataFrame: one row per run, its factors and each weights' metrics."""
    import pandas as pd

    rows = []
    weights = weights_in(results)
    for r in results:
        cfg = r.get("config") or {}
        row = {"name": r.get("name")}
        for k in set(CATEGORICAL) | set(NUMERIC):
            if k in cfg and k != "schedule":
                # several values in one run (--ema-decay 0.99,0.999) are not a factor
                row[k] = None if isinstance(cfg[k], list) else cfg[k]
        if "min_lr_ratio" in cfg:
            row["schedule"] = "constant" if cfg["min_lr_ratio"] >= 1 else "cosine"
        for name, split, key in METRICS:
            for w in weights:
                row[f"{w}:{name}"] = _metric(r, w, split, key)
        rows.append(row)
    return pd.DataFrame(rows)


def _finite(v) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _effect(estimate, lo, hi, p, n) -> dict:
    f = _finite
    return {"estimate": f(estimate), "ci_low": f(lo), "ci_high": f(hi), "p_value": f(p),
            "n": int(n)}


def paired(a: np.ndarray, b: np.ndarray) -> dict | None:
    """Mean of ``a - b`` over pairs where both are finite, with a paired t-test; None if n < 3."""
    from scipy import stats

    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    n = len(a)
    if n < 3:
        return None
    d = a - b
    if np.all(d == d[0]):  # no spread: the t-test is undefined; report the exact difference
        return _effect(d[0], d[0], d[0], 0.0 if d[0] != 0 else 1.0, n)
    res = stats.ttest_rel(a, b)
    ci = res.confidence_interval(0.95)
    return _effect(d.mean(), ci.low, ci.high, res.pvalue, n)


def _design(df, response: str):
    """What the regression of ``response`` fits: ``(frame, terms, names, factors)``: the
    trials with a finite ``response`` (column ``y`` and one column per factor), the formula's
    terms, ``{coefficient: effect name}`` and the factors that vary (``frame`` is None when
    none does)."""
    data, terms, names, factors = {}, [], {}, []
    y = df[response].to_numpy(dtype=float)
    ok = np.isfinite(y)
    placements = [k for k in ("attn_dropout", "resid_dropout", "embd_dropout")
                  if k in df and df[k].notna().all()]
    for k, (fn, unit) in NUMERIC.items():
        if k == "dropout" and placements:  # each placement overrides it: not a factor then
            continue
        if k in df and df[k].notna().all() and df.loc[ok, k].nunique() > 1:
            col = f"x_{k}"
            data[col] = fn(df[k].to_numpy(dtype=float))
            terms.append(col)
            names[col] = f"{k} ({unit})"
            factors.append(k)
    for k, ref in CATEGORICAL.items():
        if k in df and df[k].notna().all() and df.loc[ok, k].nunique() > 1:
            levels = df.loc[ok, k].astype(str)
            ref = ref if ref is not None and ref in set(levels) else levels.value_counts().index[0]
            col = f"c_{k}"
            data[col] = df[k].astype(str).to_numpy()
            terms.append(f"C({col}, Treatment({ref!r}))")
            for level in sorted(set(levels) - {ref}):
                names[f"C({col}, Treatment({ref!r}))[T.{level}]"] = f"{k}={level} (vs {ref})"
            factors.append(k)
    if not terms:
        return None, terms, names, factors
    import pandas as pd

    return pd.DataFrame({"y": y, **data})[ok], terms, names, factors


def trials_needed(names: dict) -> int:
    """Trials the regression needs: one per coefficient (each effect in ``names`` and the
    intercept) and one more, for a residual degree of freedom."""
    return len(names) + 2


def regression(df, response: str) -> dict:
    """OLS of ``response`` on every factor that varies in ``df``; ``{term name: effect}``.

    Empty when no factor varies or when there are fewer trials than :func:`trials_needed`
    (:func:`regression_shortfall` says which).
    """
    import statsmodels.formula.api as smf

    frame, terms, names, _ = _design(df, response)
    if frame is None or len(frame) < trials_needed(names):  # not enough trials for every term
        return {}
    fit = smf.ols("y ~ " + " + ".join(terms), data=frame).fit(cov_type="HC3")
    ci = fit.conf_int(0.05)
    out = {}
    for term, label in names.items():
        if term in fit.params.index:
            out[label] = _effect(fit.params[term], ci.loc[term, 0], ci.loc[term, 1],
                                 fit.pvalues[term], int(fit.nobs))
    return out


def regression_shortfall(df, response: str) -> dict | None:
    """Why :func:`regression` of ``response`` is empty although factors vary: ``{"factors":
    [...], "needed": trials it needs, "trials": trials with a finite response}``; None when
    it ran or when no factor varies (nothing is left out then)."""
    frame, _, names, factors = _design(df, response)
    if frame is None or len(frame) >= trials_needed(names):
        return None
    return {"factors": factors, "needed": trials_needed(names), "trials": len(frame)}


def regression_note(df) -> str | None:
    """One line saying why the report holds no factor effect of some metric (too few trials
    for the regression, with how many it needs and how many there are); None when nothing is
    left out."""
    short = {name: regression_shortfall(df, f"raw:{name}") for name, _, _ in METRICS
             if f"raw:{name}" in df}
    short = {name: s for name, s in short.items() if s is not None}
    if not short:
        return None
    parts = []
    for s in {json.dumps(s, sort_keys=True): s for s in short.values()}.values():
        metrics = [n for n, t in short.items() if t == s]
        which = "" if len(metrics) == len(METRICS) else f" of {', '.join(metrics)}"
        parts.append(f"the regression{which} on {', '.join(s['factors'])} needs at least "
                     f"{s['needed']} trials, there {'is' if s['trials'] == 1 else 'are'} "
                     f"{s['trials']}")
    return "factor effects left out: " + "; ".join(parts)


def effects(df) -> dict:
    """Every effect of the report (see the module docstring), Holm-adjusted p-values added."""
    from statsmodels.stats.multitest import multipletests

    out = {}
    avgs = [c.split(":")[0] for c in df.columns if c.endswith(":" + METRICS[0][0])
            and not c.startswith("raw:")]
    emas = [w for w in avgs if w != "bema"]
    pairs = [(w, "raw") for w in avgs] + ([("bema", emas[0])] if "bema" in avgs and
                                          len(emas) == 1 else [])
    for name, _, _ in METRICS:
        for a, b in pairs:
            ca, cb = f"{a}:{name}", f"{b}:{name}"
            if ca not in df or cb not in df:
                continue
            e = paired(df[ca].to_numpy(float), df[cb].to_numpy(float))
            if e:
                out[f"{name}: {a} - {b}"] = e
            for k in SUBGROUPS:
                if k not in df or df[k].nunique() < 2:
                    continue
                for level, part in df.groupby(k):
                    e = paired(part[ca].to_numpy(float), part[cb].to_numpy(float))
                    if e:
                        out[f"{name}: {a} - {b} | {k}={level}"] = e
        for term, e in regression(df, f"raw:{name}").items():
            out[f"{name}: {term}"] = e
    keys = [k for k, e in out.items() if e["p_value"] is not None]
    if keys:
        adj = multipletests([out[k]["p_value"] for k in keys], method="holm")[1]
        for k, p in zip(keys, adj):
            out[k]["p_holm"] = float(p)
    for e in out.values():
        e.setdefault("p_holm", None)
    return out


def gather(sweep_dirs=(), storage: str | None = None) -> tuple[list[dict], int, list[Path]]:
    """``(results, failed, run directories)`` of one or more sweep directories, or of a
    shared study (``storage``; ``sweep_dirs`` then only add run directories, see
    :func:`study_results`)."""
    dirs = [sweep_dirs] if isinstance(sweep_dirs, (str, Path)) else list(sweep_dirs)
    if storage:
        return study_results(storage, dirs)
    results, failed, runs = [], 0, []
    for d in dirs:
        results += load_results(d)
        failed += failed_trials(d)
        runs += [p.parent for p in sorted(Path(d).glob(f"*/{RESULT}"))]
    return results, failed, runs


def report(sweep_dir=(), storage: str | None = None, gathered=None) -> dict:
    """The JSON of ``lgagent report``: ``trials``, ``failed``, ``effects``, ``means``,
    ``curve`` (the averaging effect on unseen top1_err by training step; see :func:`curve`)
    and ``regression_note``: null, or one line saying that the factors' effects are left
    out because the regression needs more trials than the sweep has, with both numbers
    (:func:`regression_note`; the paired averaging effects need only 3).

    ``sweep_dir``: a sweep directory or several, ``storage``: a shared study's URL (see
    :func:`gather`), or ``gathered``: what :func:`gather` returned."""
    results, failed, runs = gathered or gather(sweep_dir, storage)
    df = table(results)
    out = {"trials": len(results), "failed": failed, "effects": {},
           "means": {}, "curve": {}, "regression_note": None}
    if not results:
        return out
    out["curve"] = curve(runs=runs)
    out["effects"] = effects(df)
    out["regression_note"] = regression_note(df)
    for name, _, _ in METRICS:
        out["means"][name] = {w: _nanmean(df[f"{w}:{name}"]) for w in weights_in(results)
                              if f"{w}:{name}" in df}
    return out


def _nanmean(col) -> float | None:
    v = col.to_numpy(float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else None


def format_report(rep: dict) -> list[str]:
    """The terminal table: one line per effect, grouped by metric."""
    lines = [f"{rep['trials']} finished trials, {rep['failed']} failed"]
    for name, means in rep.get("means", {}).items():
        parts = ", ".join(f"{w} {v:.4f}" for w, v in means.items() if v is not None)
        lines.append(f"mean {name}: {parts}")
    if rep["effects"]:
        width = max(len(k) for k in rep["effects"])
        lines.append(f"{'effect':{width}} {'estimate':>9} {'95% CI':>21} {'p':>8} {'p_holm':>8} "
                     f"{'n':>5}")
        for k, e in rep["effects"].items():
            ci = ("[nan]" if e["ci_low"] is None or e["ci_high"] is None  # undefined (e.g. h = 1)
                  else f"[{e['ci_low']:+.4f}, {e['ci_high']:+.4f}]")
            p = "nan" if e["p_value"] is None else f"{e['p_value']:.2g}"
            ph = "nan" if e["p_holm"] is None else f"{e['p_holm']:.2g}"
            est = f"{'nan':>9}" if e["estimate"] is None else f"{e['estimate']:+9.4f}"
            lines.append(f"{k:{width}} {est} {ci:>21} {p:>8} {ph:>8} {e['n']:5d}")
    if rep.get("regression_note"):
        lines.append(rep["regression_note"])
    return lines + format_curve(rep.get("curve") or {}, "top1_err")


def plot(rep: dict, df, path) -> None:
    """Effects with their intervals (one panel per metric) and each metric against the
    training length (one line per weights)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m for m, _, _ in METRICS]
    fig, axes = plt.subplots(2, len(names), figsize=(6 * len(names), 10),
                             gridspec_kw={"height_ratios": [3, 1]}, squeeze=False)
    for j, metric in enumerate(names):
        ax = axes[0][j]
        items = [(k.split(": ", 1)[1], e) for k, e in rep["effects"].items()
                 if k.startswith(metric + ": ") and e["ci_low"] is not None]
        ys = np.arange(len(items))
        for y, (_, e) in zip(ys, items):
            color = "tab:red" if e["p_holm"] is not None and e["p_holm"] < 0.05 else "tab:gray"
            ax.errorbar(e["estimate"], y, xerr=[[e["estimate"] - e["ci_low"]],
                                                [e["ci_high"] - e["estimate"]]],
                        fmt="o", color=color, capsize=2)
        ax.set_yticks(ys, [lbl for lbl, _ in items], fontsize=7)
        ax.axvline(0, color="black", lw=0.8)
        ax.invert_yaxis()
        ax.set_title(f"{metric}: effect and 95% CI (red: Holm p < 0.05)", fontsize=9)
        ax2 = axes[1][j]
        if "train_max_len" in df:
            for w in [c.split(":")[0] for c in df.columns if c.endswith(":" + metric)]:
                col = f"{w}:{metric}"
                if col in df:
                    g = df.groupby("train_max_len")[col].mean()
                    ax2.plot(g.index, g.values, marker="o", label=w)
            ax2.set_xlabel("train_max_len")
            ax2.set_ylabel(f"mean {metric}")
            ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curve(sweep_dir=None, metric: str = "top1_err", split: str = "unseen", runs=None) -> dict:
    """The averaging effect against training steps, from the runs' TensorBoard events
    (the finished runs of ``sweep_dir``, or the run directories ``runs``).

    For every weights other than raw and every evaluation step: the paired
    difference ``weights - raw`` of ``eval/<weights>/<split>/<metric>`` over the runs
    that logged it (an effect as in :func:`paired`, plus ``step``). Empty when the runs
    evaluated only at the end (``--eval-every 0``) or logged nothing.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict = {}  # weights -> step -> [value per run], aligned by run index
    if runs is None:
        runs = [p.parent for p in sorted(Path(sweep_dir).glob(f"*/{RESULT}"))]
    for i, run in enumerate(runs):
        acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            parts = tag.split("/")
            if len(parts) == 4 and parts[0] == "eval" and parts[2] == split and parts[3] == metric:
                for ev in acc.Scalars(tag):  # a resumed run may log a step twice: keep the last
                    series.setdefault(parts[1], {}).setdefault(ev.step, {})[i] = ev.value
    out = {}
    raw = series.get("raw", {})
    for w, by_step in series.items():
        if w == "raw":
            continue
        points = []
        for step in sorted(by_step):
            common = sorted(set(by_step[step]) & set(raw.get(step, {})))
            e = paired(np.array([by_step[step][i] for i in common], float),
                       np.array([raw[step][i] for i in common], float))
            if e:
                points.append({"step": int(step), **e})
        if points:
            out[w] = points
    return out


def format_curve(points: dict, metric: str) -> list[str]:
    """One line per evaluation step: each averaged weights' paired effect on ``metric``."""
    if not points:
        return []
    names = list(points)
    steps = sorted({p["step"] for ps in points.values() for p in ps})
    lines = [f"{'step':>6} " + " ".join(f"{w + ' - raw':>26}" for w in names)]
    for s in steps:
        cells = []
        for w in names:
            p = next((p for p in points[w] if p["step"] == s), None)
            cells.append(f"{'':>26}" if p is None else
                         f"{p['estimate']:+.4f} [{p['ci_low']:+.3f},{p['ci_high']:+.3f}]".rjust(26))
        lines.append(f"{s:6d} " + " ".join(cells))
    return [f"{metric} at unseen lengths, by training step (paired over runs, 95% CI):", *lines]


# lgagent report --averages: the schemes that lgagent average --record kept in each run
AVERAGE_METRICS = (("unseen", "top1_err"), ("seen", "top1_err"), ("unseen", "sep_acc"))


def averages(runs, where: dict | None = None) -> dict:
    """The averaging schemes recorded in the runs (``RUN_DIR/averages.json``, written by
    ``lgagent average --record``), compared within each run (paired over runs, as above).

    ``where``: keep only runs whose training config has these values (compared as text,
    e.g. ``{"preset": "setcomp-1l"}``). For every scheme recorded in at least 3 of the kept
    runs that also record ``raw``:

    * ``mean``: its mean ``unseen.top1_err``, ``seen.top1_err`` and ``unseen.sep_acc``;
    * ``vs_raw``: the paired effect ``scheme - raw`` on each of them;
    * ``length_specific``: the paired effect on ``(unseen - seen) top1_err`` of the scheme
      minus that of raw: how much more the scheme changes the unseen error than the seen
      one (0: its gain, if any, is not specific to unseen lengths);
    * ``vs_best_ema``: ``scheme - best EMA`` on ``unseen.top1_err``, where the best EMA is
      the ``ema:`` scheme of lowest mean unseen error in these runs (picked on the same
      data, so its own advantage over raw is optimistic).

    ``p_holm`` is Holm-adjusted over every p-value of this table. Runs whose record was
    evaluated on another held-out set than the others' (``--eval-size`` etc.) are refused
    with a ValueError.
    """
    from statsmodels.stats.multitest import multipletests

    from train.analysis.average import read_record

    where = {k: str(v) for k, v in (where or {}).items()}
    records, held = [], set()
    for run in runs:
        run = Path(run)
        if where:
            cfg = _run_config(run)
            if any(str(cfg.get(k)) != v for k, v in where.items()):
                continue
        rec = read_record(run)
        if "raw" not in rec:
            continue
        for entry in rec.values():
            held.add(json.dumps(entry.get("held_out") or {}, sort_keys=True))
        records.append(rec)
    if len(held) > 1:
        raise ValueError("the runs' averages were recorded on different held-out sets "
                         "(lgagent average --eval-size/--eval-seed/--train-max-len differ)")
    # the order of the fullest record (a grid's order), then any label it lacks
    fullest = max(records, key=len, default={})
    labels = list(dict.fromkeys([*fullest, *(label for rec in records for label in rec)]))

    def column(label, split, key):
        return np.array([_record_metric(rec, label, split, key) for rec in records], float)

    out = {"runs": len(records), "where": where, "best_ema": None, "schemes": {}}
    if not records:
        return out
    u_raw, s_raw = column("raw", "unseen", "top1_err"), column("raw", "seen", "top1_err")
    emas = [lab for lab in labels if any(rec.get(lab, {}).get("kind") == "ema" for rec in records)]
    means = {lab: _nanmean_array(column(lab, "unseen", "top1_err")) for lab in emas}
    best = min((lab for lab in emas if means[lab] is not None), key=lambda lab: means[lab],
               default=None)
    out["best_ema"] = best
    for label in labels:
        present = sum(label in rec for rec in records)
        if present < 3:
            continue
        entry = {"kind": next(rec[label]["kind"] for rec in records if label in rec),
                 "n": present, "mean": {}, "vs_raw": {}, "length_specific": None,
                 "vs_best_ema": None}
        for split, key in AVERAGE_METRICS:
            col = column(label, split, key)
            entry["mean"][f"{split}.{key}"] = _nanmean_array(col)
            if label != "raw":
                entry["vs_raw"][f"{split}.{key}"] = paired(col, column("raw", split, key))
        if label != "raw":
            u, s = column(label, "unseen", "top1_err"), column(label, "seen", "top1_err")
            entry["length_specific"] = paired(u - s, u_raw - s_raw)
            if best is not None and label != best:
                entry["vs_best_ema"] = paired(u, column(best, "unseen", "top1_err"))
        out["schemes"][label] = entry
    effects = [e for entry in out["schemes"].values()
               for e in [*entry["vs_raw"].values(), entry["length_specific"],
                         entry["vs_best_ema"]] if e and e["p_value"] is not None]
    if effects:
        for e, p in zip(effects, multipletests([e["p_value"] for e in effects],
                                               method="holm")[1]):
            e["p_holm"] = float(p)
    for entry in out["schemes"].values():
        for e in [*entry["vs_raw"].values(), entry["length_specific"], entry["vs_best_ema"]]:
            if e:
                e.setdefault("p_holm", None)
    return out


def _run_config(run: Path) -> dict:
    path = run / RESULT
    try:
        return json.loads(path.read_text()).get("config") or {}
    except (OSError, ValueError):
        from train.training.config import read_toml

        try:
            return read_toml(run / "config.toml")
        except Exception:  # BadInput or unreadable: a run without a readable config
            return {}


def _record_metric(rec: dict, label: str, split: str, key: str) -> float:
    v = (((rec.get(label) or {}).get("eval") or {}).get(split) or {}).get(key)
    return float("nan") if v is None else float(v)


def _nanmean_array(v: np.ndarray) -> float | None:
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else None


def format_averages(av: dict) -> list[str]:
    """The terminal table of :func:`averages`: one line per scheme."""
    where = " ".join(f"{k}={v}" for k, v in av["where"].items())
    lines = [f"averaging schemes recorded in {av['runs']} runs{' with ' + where if where else ''}"
             f" (lgagent average --record); best EMA: {av['best_ema']}"]
    if not av["schemes"]:
        return lines + ["no scheme is recorded in 3 or more of them (beside raw)"]

    def cell(e):
        if not e:
            return f"{'':>33}"
        p = "nan" if e["p_holm"] is None else f"{e['p_holm']:.2g}"
        return f"{e['estimate']:+.4f} [{e['ci_low']:+.4f},{e['ci_high']:+.4f}] {p:>7}"

    width = max(len(label) for label in av["schemes"])
    lines.append(f"{'scheme':{width}} {'n':>4} {'unseen':>7} {'seen':>7} "
                 f"{'unseen - raw [95% CI] p_holm':>33} {'seen - raw':>33} "
                 f"{'length-specific':>33} {'vs best EMA (unseen)':>33}")
    for label, e in av["schemes"].items():
        m = e["mean"]
        f = lambda v: f"{v:7.4f}" if v is not None else f"{'nan':>7}"  # noqa: E731
        lines.append(f"{label:{width}} {e['n']:4d} {f(m['unseen.top1_err'])} "
                     f"{f(m['seen.top1_err'])} {cell(e['vs_raw'].get('unseen.top1_err'))} "
                     f"{cell(e['vs_raw'].get('seen.top1_err'))} {cell(e['length_specific'])} "
                     f"{cell(e['vs_best_ema'])}")
    lines.append("top1_err, lower is better; paired over runs; length-specific: (unseen - seen) "
                 "of the scheme minus raw's")
    return lines
