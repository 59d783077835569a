"""Figures (matplotlib, no display needed): per-length evaluation curves.

:func:`per_length_figure` draws one panel per metric against the number of
tokens seen, one line per run and weights, with each run's training length
marked, from the ``per_length`` lists of :func:`train.analysis.evaluate.evaluate_model`.
The same figure goes to a PNG (``lgagent eval --plot``) and into TensorBoard
(``add_figure`` at the end of training). Figures are built with
``matplotlib.figure.Figure`` (no pyplot state, no backend switch in the caller's
process).
"""

from __future__ import annotations

import math

# (key in a per-length entry, panel title); attention entropy is averaged over layers and heads
PANELS = (
    ("top1_err", "top-1 error (illegal argmax)"),
    ("sep_acc", "separation accuracy"),
    ("margin", "margin (min legal - max illegal logit)"),
    ("illegal_mass", "probability on illegal tokens"),
    ("attn_entropy_norm", "attention entropy / ln(tokens attended)"),
    ("margin_x_length", "margin x length (flat if margin ~ 1/length)"),
)
LINESTYLES = ("-", "--", ":", "-.")  # by weights, in the order a run lists them


def _value(entry: dict, key: str) -> float:
    v = entry.get(key)
    if isinstance(v, list):  # per layer and head: the mean over all of them
        flat = [x for row in v for x in (row if isinstance(row, list) else [row])
                if x is not None and not math.isnan(x)]
        return sum(flat) / len(flat) if flat else math.nan
    return math.nan if v is None else float(v)


def per_length_figure(runs: list[tuple[str, dict, int]]):
    """A matplotlib Figure (2 x 3 panels, see :data:`PANELS`) of per-length curves.

    ``runs``: ``[(label, {weights: {"per_length": [...], ...}}, train_max_len), ...]``.
    One run: a colour per weights; several runs: a colour per run and a line
    style per weights. A dash-dot vertical line marks each run's last trained length.
    """
    import matplotlib
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 8))
    axes = fig.subplots(2, 3, squeeze=False)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, results, L) in enumerate(runs):
        for j, (w, res) in enumerate(results.items()):
            color = colors[(j if len(runs) == 1 else i) % len(colors)]
            style = "-" if len(runs) == 1 else LINESTYLES[j % len(LINESTYLES)]
            entries = res.get("per_length") or []
            xs = [e["length"] for e in entries]
            for ax, (key, _) in zip(axes.flat, PANELS):
                ys = [_value(e, key) for e in entries]
                if any(math.isfinite(y) for y in ys):
                    ax.plot(xs, ys, style, color=color, marker=".", ms=3,
                            label=f"{label} {w}".strip())
        for ax in axes.flat:
            ax.axvline(L, color="grey" if len(runs) == 1 else colors[i % len(colors)],
                       lw=0.8, ls="-.", alpha=0.7)
    for ax, (_, title) in zip(axes.flat, PANELS):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("tokens seen (length)")
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8)
    fig.suptitle("per-length evaluation (dash-dot: last trained length)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return fig


CURVE_PANELS = (("unseen", "top1_err"), ("unseen", "sep_acc"), ("seen", "top1_err"),
                ("seen", "sep_acc"))


def curve_figure(curves: dict, title: str = ""):
    """A Figure (2 x 2 panels: top-1 error and separation at unseen and seen lengths) of each
    weights' metrics against the training step: ``curves`` = ``{label: {step: {"seen": {...},
    "unseen": {...}}}}`` (``lgagent average --curve``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 8))
    axes = fig.subplots(2, 2, squeeze=False)
    for label, by_step in curves.items():
        xs = sorted(by_step)
        for ax, (split, key) in zip(axes.flat, CURVE_PANELS):
            ys = [by_step[x].get(split, {}).get(key, math.nan) for x in xs]
            if any(math.isfinite(y) for y in ys):
                ax.plot(xs, ys, marker=".", ms=3, label=label)
    for ax, (split, key) in zip(axes.flat, CURVE_PANELS):
        ax.set_title(f"{key}, {split} lengths", fontsize=9)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.suptitle(title or "averaging schemes against training steps", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.97))
    return fig


def save(fig, path) -> None:
    """Write a figure as PNG atomically (a temporary file, then rename)."""
    from train.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
