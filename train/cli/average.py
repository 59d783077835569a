"""``lgagent average``: averaging schemes from a run's weight snapshots, evaluated like ``eval``.

The schemes, their specs and formulas are in :mod:`train.analysis.average` and
:mod:`agents.posthoc` (docs/AVERAGING.md); this module parses the options, calls them and
prints. A bad ``--scheme`` is one line and exit 2 before torch is imported; a damaged or
missing snapshot is one line and exit 2; ``--save`` writes nothing unless it all worked.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from train.analysis.average import RECORD, parse_scheme, read_schemes_file
from train.cli.main import nan_to_none
from train.cli.train import held_out_options, option_type
from train.errors import BadInput


def _steps(text):
    if text is None:
        return None
    try:
        steps = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BadInput(f"--at-steps {text!r}: expected comma-separated steps") from None
    if not steps or min(steps) < 0:
        raise BadInput(f"--at-steps {text!r}: expected steps >= 0")
    return steps


@click.command("average", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run", metavar="RUN", type=click.Path(exists=False))
@click.option("--scheme", "schemes", multiple=True, metavar="SPEC",
              help="Repeatable. raw | ema:decay=D | uniform:from=STEP | bema:KEY=V,... (kappa, "
                   "eta, rho, gamma, tau, phi, floor, clock=since-snapshot|global|authors, "
                   "theta0=burn-in|initial, anchor=tau|tau+1) | bema-trl | bema-authors | "
                   "bema-run (the run's own --bema settings); presets take KEY=V overrides "
                   "(bema-trl:phi=100). See docs/AVERAGING.md.")
@click.option("--schemes-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="More schemes: one SPEC per line (blank lines and # comments "
              "skipped), added after the --scheme options; a study's grid in one file.")
@click.option("--record", is_flag=True, help="Also merge each scheme's held-out metrics at the "
              f"evaluated step into RUN/{RECORD} (atomic), which lgagent report --averages "
              "reads across a sweep's runs.")
@click.option("--at-steps", default=None, help="Comma-separated snapshot steps to evaluate at "
              "(default: the last snapshot).")
@click.option("--curve", is_flag=True, help="Evaluate every scheme at every snapshot step.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--plot", type=click.Path(), default=None, help="Write a PNG: the curve against "
              "steps with --curve, else the per-length figure of lgagent eval.")
@click.option("--save", "save_name", default=None, metavar="NAME",
              help="Add the averaged weights (one --scheme, one step) to the checkpoint as "
                   "weights NAME, which eval, play, probe and export accept (--weights NAME).")
@held_out_options
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu")
@click.option("--num-threads", type=option_type("num_threads"), default=None,
              help="CPU threads for torch.")
def average(run, schemes, schemes_file, record, at_steps, curve, as_json, plot, save_name,
            eval_size, eval_seed, train_max_len, device, num_threads):
    """Average a run's weight snapshots (lgagent train --snapshot-every N) under each --scheme
    and evaluate each on the run's held-out set: the metrics and per-length rows of lgagent
    eval, at the last snapshot, at --at-steps, or at every snapshot (--curve)."""
    if schemes_file is not None:
        try:
            schemes = (*schemes, *read_schemes_file(schemes_file))
        except ValueError as e:
            raise BadInput(str(e)) from None
    if not schemes:
        raise BadInput("give at least one --scheme (or --schemes-file)")
    for spec in schemes:  # syntax and ranges before anything heavy (bema-run needs the run)
        try:
            parse_scheme(spec, {"bema": True})
        except ValueError as e:
            raise BadInput(str(e)) from None
    if len(set(schemes)) != len(schemes):
        raise BadInput("a --scheme is given twice")
    steps = _steps(at_steps)
    if curve and steps:
        raise BadInput("--curve and --at-steps exclude each other")
    if record and (curve or (steps and len(steps) != 1)):
        raise BadInput("--record keeps one step per scheme: drop --curve, or give one --at-steps")
    if save_name is not None and (len(schemes) != 1 or curve or (steps and len(steps) != 1)):
        raise BadInput("--save needs one --scheme and one step (the last snapshot or one "
                       "--at-steps)")
    if plot is not None:
        target = Path(plot)
        if target.is_dir() or not target.parent.is_dir():
            raise BadInput(f"--plot {plot}: give a file name in an existing directory")
    from train.cli.main import machine_and_weights

    machine_and_weights(num_threads, device, ())
    try:
        _average(run, schemes, steps, curve, as_json, plot, save_name, eval_size, eval_seed,
                 train_max_len, device, record)
    except ValueError as e:
        raise BadInput(str(e)) from None


def _average(run, specs, steps, curve, as_json, plot, save_name, eval_size, eval_seed,
             train_max_len, device, record=False):
    from agents.checkpoint import CHECKPOINT, load
    from train.analysis import average as A
    from train.analysis.evaluate import format_results, table_lengths

    path = Path(run)
    ckpt_path = path / CHECKPOINT if path.is_dir() else path
    ckpt = load(ckpt_path)
    schemes = [parse_scheme(s, ckpt["config"]) for s in specs]
    ckpt, snaps, weights = A.compute(ckpt_path.parent, schemes, steps, curve)
    results, L = A.evaluate_schemes(ckpt, weights, eval_size=eval_size, eval_seed=eval_seed,
                                    train_max_len=train_max_len, device=device)
    final = max(next(iter(results.values())))
    at_final = {label: by_step[final] for label, by_step in results.items()}
    if save_name is not None:
        from train.training.run import run_lock  # no training may rewrite it meanwhile
        from train.training.trainer import WriteFailed, save_checkpoint

        with run_lock(ckpt_path.parent):
            new = A.with_saved_weights(ckpt_path, load(ckpt_path), save_name, schemes[0], final,
                                       weights[schemes[0].label][final])
            try:  # atomic: a failed write leaves the checkpoint as it was
                save_checkpoint(ckpt_path, new, ckpt["step"])
            except WriteFailed as e:
                raise BadInput(str(e)) from None
    if record:
        from train.training.run import run_lock

        with run_lock(ckpt_path.parent):
            A.record(ckpt_path.parent, schemes, final, at_final,
                     {"eval_size": eval_size, "eval_seed": eval_seed,
                      "train_max_len": train_max_len})
    if plot is not None:
        from train.analysis.plots import curve_figure, per_length_figure, save

        if curve:
            save(curve_figure(results, f"{path.name}: averaging schemes"), plot)
        else:
            save(per_length_figure([(path.name, at_final, L)]), plot)
    info = {"run": str(run), "env": ckpt["config"].get("env"), "checkpoint_step": ckpt["step"],
            "train_max_len": L, "snapshots": {"count": len(snaps.steps), "first": snaps.steps[0],
                                              "last": snaps.steps[-1],
                                              "every": ckpt["config"].get("snapshot_every")}}
    if as_json:
        out = {**info, "step": final, "schemes": {s.label: {"kind": s.kind, "args": s.args}
                                                  for s in schemes},
               "eval": at_final}
        if curve or (steps and len(steps) > 1):
            out["curve"] = {label: {str(step): {k: v for k, v in res.items() if k != "per_length"}
                                    for step, res in by_step.items()}
                            for label, by_step in results.items()}
        click.echo(json.dumps(nan_to_none(out), indent=2))
    else:
        click.echo(f"{run}: {info['env']}, {len(snaps.steps)} snapshots (steps "
                   f"{snaps.steps[0]}..{snaps.steps[-1]}), seen lengths 1..{L}; at step {final}:")
        lengths = table_lengths(L, max((e["length"] for r in at_final.values()
                                        for e in r.get("per_length") or []), default=1))
        for line in format_results(at_final, None, lengths):
            click.echo(line)
        if len(next(iter(results.values()))) > 1:
            click.echo("unseen top1_err by step:" if L < _block(ckpt) else "top1_err by step:")
            split = "unseen" if L < _block(ckpt) else "seen"
            width = max(10, *(len(s.label) + 1 for s in schemes))
            click.echo(f"{'step':>8} " + " ".join(f"{s.label:>{width}}" for s in schemes))
            for step in sorted(next(iter(results.values()))):
                click.echo(f"{step:>8} " + " ".join(
                    f"{results[s.label][step][split]['top1_err']:>{width}.4f}" for s in schemes))
    if save_name is not None:
        click.echo(f"saved: weights {save_name!r} ({specs[0]} at step {final}) in {ckpt_path}; "
                   f"lgagent eval {run} --weights {save_name}", err=True)
    if record:
        click.echo(f"recorded: {len(schemes)} schemes at step {final} in "
                   f"{ckpt_path.parent / RECORD}", err=True)
    if plot is not None:
        click.echo(f"figure: {plot}", err=True)


def _block(ckpt) -> int:
    return int(ckpt["model_config"]["block_size"])
