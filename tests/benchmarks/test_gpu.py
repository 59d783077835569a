"""benchmarks/gpu.py: the whole device check runs on the CPU with --smoke and prints
its JSON; the FLOP count, the peak table and the option checks."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents.config import preset
from agents.model import GPT

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def run(*args, timeout=300):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=ENV, check=False)


def test_smoke_runs_every_part_and_resumes_bitwise(tmp_path):
    r = run("--smoke", "--peak-flops", 1e12, "--out", tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = json.loads(r.stdout)  # stdout is the JSON alone
    assert out["ok"] is True and out["smoke"] is True and out["device"] == "cpu"
    assert {"train", "averaging", "resume", "torchrun", "torchrun_ddp", "eval", "play",
            "peak_flops", "flops_formula", "seconds"} <= set(out)
    eager = out["train"]["eager"]
    assert eager["preset"] == "tiny" and eager["dtype"] == "float32" and eager["steps"] == 6
    assert eager["tokens_per_s"] > 0 and 0 <= eager["data_share"] < 1
    assert eager["flops_per_step"] > 0
    assert eager["mfu"] == pytest.approx(eager["flops_per_step"] / eager["step_s"] / 1e12,
                                         rel=1e-3, abs=1e-4)
    assert out["train"]["compile"]["skipped"]  # on the CPU: tests/train/cli/test_train.py compiles
    for name in ("ema", "bema"):
        a = out["averaging"][name]
        assert a["update_s"] > 0 and a["share_of_step"] == pytest.approx(
            a["update_s"] / eager["step_s"], rel=1e-2, abs=1e-4)
    res = out["resume"]
    assert res["bitwise"] is True and res["max_abs_diff"] == 0.0 and res["ok"] is True
    assert (res["stopped_at"], res["final_step"], res["data_step"]) == (3, 6, 6)
    ddp = out["torchrun_ddp"]
    assert ddp["ok"] and ddp["backend"] == "gloo" and ddp["params_in_sync"] is True
    assert out["torchrun"]["skipped"]
    assert out["eval"]["ok"] and sorted(out["eval"]["weights"]) == ["ema", "raw"]
    assert out["play"]["ok"] and out["play"]["games"] == 4
    assert set(out["play"]["score"]) == {"raw", "ema"}
    assert (tmp_path / "split" / "checkpoint.pt").is_file()  # --out keeps the runs


def test_flops_formula_and_the_peak_table():
    gpu = load_script()
    model = GPT(preset("othello-gpt"))
    n = 8 * 12 * 512 * 512 + 512 * 61  # q/k/v, output, MLP in and out per layer; the head
    assert gpu.model_flops_per_step(model, 512, 59) == (6 * n + 12 * 8 * 512 * 59) * 512 * 59
    assert gpu.peak_flops(torch.device("cpu"), 5e12) == (5e12, "--peak-flops")
    assert gpu.peak_flops(torch.device("cpu"), None)[0] is None
    names = [k for k, _ in gpu.PEAK_BF16_FLOPS]
    # a name that contains another must be matched first (H100 PCIe before H100, L40S before L4)
    for i, a in enumerate(names):
        assert not any(b in a for b in names[:i]), a
    table = dict(gpu.PEAK_BF16_FLOPS)
    assert table["H100"] == table["H200"] == 989e12 and table["A100"] == 312e12


@pytest.mark.parametrize("args, match", [
    (["--smoke", "--peak-flops", "0"], "--peak-flops must be positive"),
    (["--smoke", "--steps", "0"], "--steps must be at least 1"),
])
def test_bad_options_exit_2_with_one_line(args, match):
    r = run(*args, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert match in r.stderr.strip().splitlines()[-1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_without_cuda_the_full_check_is_refused():
    r = run(timeout=120)
    assert r.returncode == 2 and "no CUDA device" in r.stderr and "--smoke" in r.stderr


def test_a_failing_part_is_reported_and_the_others_still_run(monkeypatch, capsys):
    gpu = load_script()
    calls = []

    def fake(name, value):
        def f(*args):
            calls.append(name)
            if isinstance(value, Exception):
                raise value
            return value
        return f

    monkeypatch.setattr(gpu, "train_case", fake("train", {"ok": True, "averaging": {}}))
    monkeypatch.setattr(gpu, "resume_check", fake("resume", RuntimeError("boom\nmore")))
    monkeypatch.setattr(gpu, "torchrun_ddp", fake("ddp", {"ok": True}))
    assert gpu.main(["--smoke"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert calls == ["train", "resume", "ddp"]
    assert out["ok"] is False and out["resume"] == {"ok": False, "error": "RuntimeError: boom"}
    assert out["torchrun_ddp"]["ok"] and out["train"]["eager"]["ok"]
    assert not out["eval"]["ok"] and "resume check failed" in out["play"]["error"]
