"""``--track``: the run's TensorBoard logs also sent to Weights & Biases (CleanRL's flag).

The same scalars under the same tags (``loss/train``, ``charts/...``, ``eval/<weights>/
<split>/<metric>``, ``eval/<weights>/play/...``) at the same training steps, the run's
config (``config.toml``'s fields) as the W&B config, and the per-length figure of the
last evaluation (``eval/per_length``, an image). TensorBoard stays on and unchanged.

* Run name: the run directory's name; project: ``$WANDB_PROJECT`` or ``lgagent``
  (``$WANDB_ENTITY``, ``$WANDB_RUN_GROUP``, ``$WANDB_MODE`` ... as wandb reads them).
* Local files: ``RUN_DIR/wandb/`` (wandb's own layout). ``WANDB_MODE=offline`` logs
  there without a network or an account; ``wandb sync RUN_DIR/wandb/offline-run-*``
  uploads later.
* Resume: the W&B run id is kept in ``RUN_DIR/wandb/lgagent-run-id``; ``--resume``
  continues that W&B run (``resume="allow"``), a fresh run (or ``--force``) starts a new
  one. Steps that the resumed W&B run already holds (logged after the checkpoint by the
  interrupted process) are not logged again: exact resume makes them the same values.

wandb (the ``track`` extra) is imported only when ``--track`` is on.
"""

from __future__ import annotations

import os
from pathlib import Path

from train.errors import BadInput

DIR = "wandb"  # RUN_DIR/wandb: wandb's files (train.training.run counts it as the run's)
ID_FILE = "lgagent-run-id"
DEFAULT_PROJECT = "lgagent"


def check_available() -> None:
    """BadInput (one line) unless wandb can be imported (before the run writes anything)."""
    try:
        import wandb  # noqa: F401
    except ImportError as e:
        raise BadInput(f"--track needs Weights & Biases: pip install \"lgagent[track]\" "
                       f"({type(e).__name__}: {e})") from None


def run_id(out: Path, fresh: bool) -> str:
    """The W&B run id of RUN_DIR: read back on a resume, new (and saved) for a fresh run."""
    from train.atomic import atomic_write_text

    path = Path(out) / DIR / ID_FILE
    if not fresh and path.is_file():
        text = path.read_text().strip()
        if text:
            return text
    import secrets

    new = secrets.token_hex(4)  # 8 characters [0-9a-f]: a valid W&B run id
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, new + "\n")
    return new


class WandbSink:
    """Scalars, figures and the config of one run into W&B (rank 0 only)."""

    def __init__(self, out: Path, config: dict, *, fresh: bool, tags=()):
        import wandb

        out = Path(out)
        self.id = run_id(out, fresh)
        try:
            self.run = wandb.init(
                project=os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
                name=out.name, id=self.id, resume="allow", dir=str(out),
                config=config, tags=[t for t in tags if t],
                settings=wandb.Settings(console="off"))  # stdout/stderr stay the trainer's
        except Exception as e:  # noqa: BLE001 - no API key, no network: one line, exit 2
            from train.training.prefetch import one_line

            raise BadInput(f"--track: wandb could not start the run: {one_line(e)} "
                           "(WANDB_MODE=offline logs without an account or network)") from None
        if not fresh:  # the resumed run's config: the same, except the options a resume changes
            self.run.config.update(config, allow_val_change=True)
        self.start_step = int(getattr(self.run, "step", 0) or 0)  # what the W&B run holds

    def scalars(self, values: dict, step: int) -> None:
        if step >= self.start_step:
            self.run.log({k: float(v) for k, v in values.items()}, step=step)

    def figure(self, tag: str, fig, step: int) -> None:
        import wandb

        if step >= self.start_step:
            self.run.log({tag: wandb.Image(fig)}, step=step)

    def finish(self, exit_code: int = 0) -> None:
        self.run.finish(exit_code=exit_code)
