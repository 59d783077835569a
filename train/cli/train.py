"""``lgagent train``: the options of :class:`train.training.config.RunConfig` as a click command.

Every option comes from RunConfig (flag, type, range, choices, help); the command
checks them through :func:`train.training.run.prepare`, which writes nothing, and
then runs :func:`train.training.run.run_training`. Nothing heavier than click and
the config is imported until the command runs, so ``--help`` and option errors
are fast.
"""

from __future__ import annotations

import click

from train.errors import BadInput
from train.training import config as C


def option_type(name: str):
    """The click type of RunConfig field ``name``: its choices, or its type within its range
    (``ge``/``gt``/``le``/``lt`` of its Opt), so that a value out of range stops at parsing
    (exit 2, before torch is imported). :func:`train.training.config.validate` checks the
    same ranges (and finiteness) for values from config files."""
    o, t = C.OPTS[name], C.TYPES[name]
    if o.choices:
        return click.Choice(o.choices)
    lo = o.ge if o.ge is not None else o.gt
    hi = o.le if o.le is not None else o.lt
    if t not in (int, float) or (lo is None and hi is None):
        return t
    return (click.IntRange if t is int else click.FloatRange)(
        lo, hi, min_open=o.gt is not None, max_open=o.lt is not None)


def held_out_options(f):
    """``--eval-size``, ``--eval-seed`` and ``--train-max-len`` of a command that evaluates a
    saved run (``lgagent eval``, ``lgagent average``): each defaults to the run's own and has
    ``lgagent train``'s range."""
    for flag, name, text in reversed((
            ("--eval-size", "eval_size", "Held-out sequences (default: the run's)."),
            ("--eval-seed", "eval_seed", "Held-out seed (default: the run's)."),
            ("--train-max-len", "train_max_len", "Seen/unseen boundary (default: the run's)."))):
        f = click.option(flag, name, type=option_type(name), default=None, help=text)(f)
    return f


def _opt(name: str):
    """The click option of RunConfig field ``name``, all from train.training.config: flag, type,
    range, choices, help and default text. Its click default is None so that only the options
    given override the config file and the defaults (the dataclass holds the defaults)."""
    o, t, flag = C.OPTS[name], C.TYPES[name], C.flag(name)
    if t is bool:
        flag = f"{flag}/--no-{flag[2:]}"
    type_ = option_type(name)
    if o.several:  # comma-separated values, each parsed as the field's type
        return click.option(flag, name, type=str, default=None, help=C.help_text(name),
                            callback=_parse_several)
    return click.option(flag, name, type=type_, default=None, help=C.help_text(name))


def _parse_several(ctx, param, text):
    if text is None:
        return None
    try:
        return C.parse_text(param.name, text)
    except ValueError as e:
        raise BadInput(f"{C.flag(param.name)} {text!r}: {e}") from None


OPTIONS = [
    *(_opt(name) for name in C.FIELDS),  # every training option (see RunConfig)
    click.option("--config", type=click.Path(dir_okay=False), default=None,
                 help="TOML file of options (keys as the long options, e.g. batch_size = 256); "
                      "command-line options win."),
    click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint "
                 "(a run killed before its first save starts fresh from the options given)."),
    click.option("--force", is_flag=True, help="Start over in a used --out (removes its "
                 "checkpoint, config and events)."),
    click.option("--progress/--no-progress", default=True, help="Show the progress bar."),
]


def _options(f):
    for opt in reversed(OPTIONS):
        f = opt(f)
    return f


def _format_summary(summary: dict, cfg: C.RunConfig) -> list[str]:
    from train.analysis.evaluate import format_results

    lines = []
    head = f"step {summary['step']}/{cfg.steps} in {summary['seconds']:.1f}s"
    if summary["step"] and summary.get("tokens_per_s"):
        head += f" ({summary['tokens_per_s']:,.0f} tokens/s)"
    if summary["interrupted"]:
        head += f"; stopped by {summary['interrupted']}"
    lines.append(head)
    lines += format_results(summary["eval"], summary.get("play"))
    if summary.get("params_in_sync") is not None:
        lines.append("parameters identical on all ranks" if summary["params_in_sync"]
                     else "WARNING: parameters differ across ranks")
    out = cfg.out
    lines.append(f"checkpoint: {out}/checkpoint.pt; TensorBoard: tensorboard --logdir {out}")
    if not summary["finished"]:
        lines.append(f"resume with: lgagent train --resume --out {out}")
    elif summary["interrupted"] and summary["eval"] is None:
        lines.append(f"the final evaluation was stopped; evaluate with: lgagent eval {out}")
    return lines


@click.command("train", context_settings={"help_option_names": ["-h", "--help"],
                                          "max_content_width": 100})
@_options
@click.pass_context
def train(ctx, config, resume, force, progress, **options):
    """Train a GPT on Othello legal moves or set complement; logs to TensorBoard.

    \b
    With only --env othello --ema this is the OthelloGPT recipe (preset
    othello-gpt, AdamW 5e-4, betas 0.9/0.95, weight decay 0.1 on matrices,
    clip 1.0, warmup then cosine to 10%, batch 512 per GPU, next-token loss),
    sized for one GPU. A CPU run that finishes in a few minutes on 2 cores:
      lgagent train --env othello --ema --ema-decay 0.995,0.999 --preset tiny
        --steps 3000 --batch-size 64 --lr 3e-3 --train-max-len 40 --out runs/quickstart
    Several processes: torchrun --nproc_per_node K --no-python lgagent train --env ... --out RUN_DIR
    """
    from train.training.distributed import dist_from_env
    from train.training.run import interrupted_exit_code, prepare, run_training

    cli_values = {k: v for k, v in options.items() if v is not None}
    try:
        d = dist_from_env()
    except ValueError as e:
        raise BadInput(str(e)) from None
    cfg, task, model_cfg, ckpt = prepare(cli_values, config_file=config, resume=resume,
                                         force=force, dist_info=d)
    # --resume without a checkpoint: a run killed before its first save, started fresh
    # (prepare said so); its files go once the new run starts, as with --force
    summary = run_training(cfg, task, model_cfg, ckpt, dist_info=d, progress=progress,
                           force=force or (resume and ckpt is None))
    if d.is_main:
        for line in _format_summary(summary, cfg):
            click.echo(line)
    if summary["interrupted"]:
        ctx.exit(interrupted_exit_code(summary))


