"""``lgagent export`` and ``lgagent import``: runs to and from TransformerLens and safetensors.

The conversions live in :mod:`agents.interop`; this module checks options, writes files
atomically (a killed command leaves the previous file or none, never a partial one) and
prints one line. Unusable input, a model the other side cannot represent (Post-Norm, a
non-GELU MLP, parallel attention, ...) and a missing ``interop`` extra exit 2 with one line;
nothing is written then.

* ``lgagent export RUN --to transformer-lens --out FILE``: ``torch.save`` of ``{"format":
  "lgagent-transformer-lens", "version": 1, "config": TransformerBridgeConfig fields,
  "state_dict": TL-native keys, "lgagent": metadata}``; before writing, the file's contents
  are booted as a TransformerLens model and converted back, and the logits and weights are
  checked against the run's.
* ``lgagent export RUN --to safetensors --out FILE``: the lgagent state dict with the model
  config, task, vocabulary and run config as string metadata.
* ``lgagent export RUN --to hf --out DIR``: a Hugging Face model directory
  (``GPT2LMHeadModel``: ``config.json`` with the lgagent metadata, ``model.safetensors``,
  ``lgagent_tokens.json``, a word-level tokenizer), written beside DIR and moved into place
  once transformers loads it back with the run's logits and lgagent's importer gives back
  the same weights.
* ``lgagent import FILE --out RUN``: either file (ours, or any ``{"config", "state_dict"}``
  torch file from TransformerLens), or a Hugging Face GPT-2 directory, becomes
  ``RUN/checkpoint.pt``, a weights-only checkpoint that ``lgagent eval``, ``play`` and
  ``probe`` and ``ModelPolicy`` read.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import click

from train.atomic import human_bytes, short_path
from train.errors import BadInput

TARGETS = ("transformer-lens", "safetensors", "hf")


def _check_out_file(out: Path, force: bool) -> None:
    from train.atomic import path_problem

    problem = path_problem(out)
    if problem:
        raise BadInput(f"--out {short_path(out)}: {problem}")
    if out.is_dir():
        raise BadInput(f"--out {out} is a directory; give a file name")
    if out.exists() and not force:
        raise BadInput(f"{out} already exists; pass --force to overwrite it")


@click.command("export", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run", type=click.Path(exists=False))
@click.option("--to", "target", type=click.Choice(TARGETS), required=True,
              help="transformer-lens: a torch file TransformerLens boots (config + state dict); "
                   "safetensors: the lgagent weights with the config as metadata; hf: a Hugging "
                   "Face model directory (GPT2LMHeadModel: config.json, model.safetensors, token "
                   "map, tokenizer) that from_pretrained(DIR) loads offline.")
@click.option("--weights", default="raw", show_default=True,
              help="Which weights of the checkpoint: raw, ema, bema or ema_<decay>.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="The file to write (e.g. model.tl.pt or model.safetensors); --to hf: the "
                   "directory.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def export_command(run, target, weights, out, force):
    """Export RUN's weights (RUN is a RUN_DIR or a checkpoint file) for other tools.

    Needs the interop extra (pip install "lgagent[interop]"; --to hf: "lgagent[hf]"). Post-Norm
    models have no TransformerLens equivalent and are refused; --to hf takes pre-norm models
    with learned positions and an MLP (GPT-2's architecture) only.
    """
    from agents import interop
    from agents.checkpoint import first_line, load, model_from_checkpoint, weights_of

    if target == "hf":
        _check_out_dir(out, force)
    else:
        _check_out_file(out, force)
    try:
        ckpt = load(run)
    except ValueError as e:
        raise BadInput(first_line(e)) from None
    if weights not in weights_of(ckpt):
        raise BadInput(f"{run} holds no {weights!r} weights; choose from "
                       f"{', '.join(weights_of(ckpt))}")
    model = model_from_checkpoint(ckpt, weights)
    if target == "hf":
        try:
            interop.hf_config(model.config)  # refused before the slow import
            _write_hf_dir(out, force, ckpt, weights, model)
        except ValueError as e:
            raise BadInput(first_line(e)) from None
        size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
        click.echo(f"wrote {out}/ (Hugging Face GPT2LMHeadModel, {weights} weights of {run} at "
                   f"step {ckpt['step']}, {model.num_params():,} parameters, {human_bytes(size)}; "
                   f"transformers.AutoModelForCausalLM.from_pretrained('{out}'))")
        return
    try:
        if target == "transformer-lens":
            interop.tl_config(model.config)  # Post-Norm: refused before the slow import
            payload = interop.transformer_lens_payload(ckpt, weights)
            back = interop.from_hooked_transformer(payload)  # boots the file's contents
            want = model.state_dict()
            if model.config.pos == "learned-random":  # exported: the rows of 0..block_size-1
                want = {**want, "wpe.weight": want["wpe.weight"][: model.config.block_size]}
            same = back.state_dict().keys() == want.keys() and all(
                v.equal(back.state_dict()[k]) for k, v in want.items())
            if not same:
                raise ValueError("the TransformerLens model does not convert back to the same "
                                 "weights (a bug: please report it)")
            data = None
        else:
            payload, data = None, interop.safetensors_payload(ckpt, weights)
    except ValueError as e:
        raise BadInput(first_line(e)) from None
    _write(out, force, payload, data)
    size = out.stat().st_size
    click.echo(f"wrote {out} ({target}, {weights} weights of {run} at step {ckpt['step']}, "
               f"{model.num_params():,} parameters, {human_bytes(size)})")


def _check_out_dir(out: Path, force: bool) -> None:
    from train.atomic import path_problem

    problem = path_problem(out)  # the temporary directory's name beside it must fit too
    if problem:
        raise BadInput(f"--out {short_path(out)}: {problem}")
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} is a file; --to hf writes a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise BadInput(f"{out} is not empty; pass --force to replace it")


def _write_hf_dir(out: Path, force: bool, ckpt, weights: str, model) -> None:
    """Write the Hugging Face directory beside ``out``, load it back with transformers (the
    logits) and with lgagent's importer (the same weights), then move it into place: a
    killed or failed export leaves the previous directory or none."""
    import shutil
    import tempfile

    from agents import interop

    tf = interop._transformers()
    tf.utils.logging.disable_progress_bar()
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.absolute().parent))
    try:
        try:
            interop.save_hf(ckpt, tmp, weights)
        except OSError as e:
            what = "no space left on device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            raise BadInput(f"cannot write {out}: {what}; nothing was written") from None
        hf = tf.AutoModelForCausalLM.from_pretrained(tmp).eval()
        diff = interop.max_hf_logit_difference(model, hf)
        back = interop.read_hf_dir(tmp).model.state_dict()
        same = back.keys() == model.state_dict().keys() and all(
            v.equal(back[k]) for k, v in model.state_dict().items())
        if not diff <= interop.ATOL or not same:
            raise ValueError(f"the exported model does not give back the run's (logits differ "
                             f"by {diff:.3g}, weights {'equal' if same else 'differ'}): a bug, "
                             "please report it")
        old = None
        if out.exists():  # --force (checked): the previous directory goes once the new one is in
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old",
                                        dir=out.absolute().parent))
            os.replace(out, old / out.name)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _write(out: Path, force: bool, payload, data: bytes | None) -> None:
    import torch

    from train.atomic import atomic_path, remove_stale_temps

    remove_stale_temps(out)
    try:
        with atomic_path(out, overwrite=force) as tmp:
            if data is not None:
                tmp.write_bytes(data)
            else:
                torch.save(payload, tmp)
    except FileExistsError:
        raise BadInput(f"{out} already exists; pass --force to overwrite it") from None
    except OSError as e:
        what = "no space left on device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise BadInput(f"cannot write {out}: {what}; nothing was written") from None


@click.command("import", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("file", type=click.Path(exists=False))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="RUN_DIR to write checkpoint.pt into (lgagent eval/play/probe RUN_DIR).")
@click.option("--task", type=click.Choice(["othello", "setcomp"]), default=None,
              help="The model's task when the file does not say (default: othello for a "
                   "vocabulary of 61, else setcomp over vocabulary - 1 tokens).")
@click.option("--force", is_flag=True, help="Overwrite RUN_DIR/checkpoint.pt if it exists.")
def import_command(file, out, task, force):
    """Import FILE (an export of lgagent export, a TransformerLens config + state dict
    saved with torch, or a Hugging Face GPT-2 model directory) as a run whose checkpoint
    lgagent eval, play and probe read.

    The model's logits are checked against TransformerLens's (or transformers') before
    anything is written. Needs the interop extra (pip install "lgagent[interop]"; a Hugging
    Face directory: "lgagent[hf]").
    """
    from agents import interop
    from agents.checkpoint import CHECKPOINT, first_line
    from train.atomic import path_problem, remove_stale_temps
    from train.training.run import run_lock
    from train.training.trainer import WriteFailed, save_checkpoint

    problem = path_problem(out, inside=True)
    if problem:
        raise BadInput(f"--out {short_path(out)}: {problem}")
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} is a file; give a run directory")
    target = out / CHECKPOINT
    if target.exists() and not force:
        raise BadInput(f"{target} already exists; pass --force to overwrite it")
    if Path(file).is_dir():  # a Hugging Face directory: transformers' own progress bars off
        try:
            interop._transformers().utils.logging.disable_progress_bar()
        except ValueError as e:
            raise BadInput(first_line(e)) from None
    try:
        imported = interop.read_interop_file(file, task)
        ckpt = interop.checkpoint_of(imported)
    except ValueError as e:
        raise BadInput(first_line(e)) from None
    with run_lock(out):
        remove_stale_temps(target)
        try:
            save_checkpoint(target, ckpt)
        except WriteFailed as e:
            raise BadInput(str(e)) from None
    c = imported.model.config
    click.echo(f"imported {file} ({imported.source}): {imported.task} model, {c.n_layer} "
               f"layers, {c.n_head} heads, width {c.n_embd}, norm={c.norm}, pos={c.pos}, "
               f"mlp={c.mlp}, {imported.model.num_params():,} parameters -> {target}")
