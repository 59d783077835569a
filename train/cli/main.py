"""The ``lgagent`` command line.

Subcommands live in their own modules and are imported only when invoked, so
``lgagent --help`` stays fast (importing torch alone takes seconds).

Errors: a bad argument or unusable input exits with code 2 and one line on
stderr (``Error: ...``), never a traceback. Raise :class:`BadInput` for those.
"""

from __future__ import annotations

import importlib
import re
import sys

import click

from train.errors import BadInput

# name -> ("module:attribute" of a click.Command, one-line help shown by `lgagent --help`)
COMMANDS = {
    "datagen": ("train.cli.datagen:datagen",
                "Generate a corpus of random Othello games as .npy or .parquet."),
    "train": ("train.cli.train:train", "Train a model on Othello or set complement."),
    "sweep": ("train.cli.sweep:sweep",
              "Train a grid of runs (dropout, norm, ...) and tabulate unseen-length legality."),
    "report": ("train.cli.report:report",
               "Effects of each factor of a sweep on unseen-length legality, with 95% CIs."),
    "average": ("train.cli.average:average",
                "Average a run's weight snapshots (EMA, BEMA, tail) and evaluate each scheme."),
    "eval": ("train.cli.eval:eval_command",
             "Evaluate a run's checkpoint: legality at seen/unseen lengths, play vs random."),
    "play": ("train.cli.play:play",
             "Play a run's model at Othello vs random, greedy, alphabeta, another run or you."),
    "probe": ("train.cli.probe:probe",
              "Linear board probes per layer of a run's residual stream, seen vs unseen lengths."),
    "intervene": ("train.cli.intervene:intervene",
                  "Edit the board picture along saved probes: do the predicted moves follow?"),
    "export": ("train.cli.interop:export_command",
               "Export a run's weights for TransformerLens or as safetensors."),
    "import": ("train.cli.interop:import_command",
               "Import a TransformerLens or safetensors model as a run (eval, play, probe)."),
}


def show(res: dict, *, as_json: bool, lines, plot=None, figure=None) -> None:
    """Print a command's result: ``figure(res)`` saved to ``plot`` first (when given), then
    ``res`` as strict JSON with ``as_json``, else ``lines(res)`` and the figure's path."""
    import json

    if plot is not None:
        from train.analysis.plots import save

        save(figure(res), plot)
    if as_json:
        click.echo(json.dumps(nan_to_none(res), indent=2))
        return
    for line in lines(res):
        click.echo(line)
    if plot is not None:
        click.echo(f"figure: {plot}")


def nan_to_none(obj):
    """Strict JSON for ``--json``: NaN (a metric with nothing to average) becomes null."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [nan_to_none(v) for v in obj]
    return obj


def machine_and_weights(num_threads, device, weights) -> list[str]:
    """Check the ``--device`` option of a model command and apply ``--num-threads`` (its
    click type checks its range); return the ``--weights`` names (repeatable,
    comma-separated). BadInput (exit 2, one line) when one is unusable."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise BadInput("--device cuda: no CUDA device is available")
    names = [w.strip() for item in weights for w in item.split(",") if w.strip()]
    if weights and not names:
        raise BadInput("--weights is empty; choose from raw, ema, bema")
    if num_threads:
        torch.set_num_threads(num_threads)
    return names


class _LazyGroup(click.Group):
    """A group whose commands are imported on first use, printing errors on one line."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        # Listing must not import the subcommands (and torch with them).
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as e:
            # click's default shows usage lines above the message; one line is the contract here
            # (a missing choice option lists its choices on lines of their own: joined).
            message = re.sub(r"\s*\n\s*", " ", e.format_message())
            click.echo(f"Error: {message}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group("lgagent", cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lgagent")
def main():
    """lgagent: sequence models that learn which next moves are legal.

    \b
    Quick start (a few minutes on a 2-core CPU; see docs/RESULTS.md):
      lgagent train --env othello --ema --ema-decay 0.995,0.999 --preset tiny \\
          --steps 3000 --batch-size 64 --lr 3e-3 --train-max-len 40 --out runs/quickstart
      lgagent eval runs/quickstart
      lgagent play runs/quickstart --games 100
      lgagent datagen --env othello --games 20000000 --out games.npy
    """


if __name__ == "__main__":  # python -m train.cli.main ... (python -m train.cli: __main__.py)
    main()
