"""Every script in examples/ runs with --smoke (a subprocess, as a user runs it) and prints its figure.

An example whose library is not installed (pip install -e '.[examples]') is skipped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# script -> (modules it needs beyond the project's dependencies, what its last line must say)
CASES = {
    "masked_random_rollout.py": ((), r"vector env: \{'episodes': \d+, 'mean_return'"),
    "pettingzoo_loop.py": ((), r"episodes: 2, total reward greedy player_0"),
    "sb3_maskable_ppo_othello.py": (
        ("stable_baselines3", "sb3_contrib"),
        r"MaskablePPO on Othello-v0, 256 steps: win rate vs random before [01]\.\d{3}, after [01]\.\d{3} \(10 games\)",
    ),
    "cleanrl_ppo_vector.py": (
        (),
        r"PPO on the native vector env \(64 envs\): env-steps/s [\d,]+ \(per CPU second [\d,]+\), "
        r"win rate vs random first iteration [01]\.\d{3}, last [01]\.\d{3}",
    ),
    "tianshou_pettingzoo.py": (
        ("tianshou",),
        r"win rate vs random before [01]\.\d{3}, after [01]\.\d{3} \(10 games\); "
        r"buffer infos\['moves'\] int8 \(\d+, 60\)",
    ),
    "pettingzoo_selfplay.py": ((), r"model win rate [01]\.\d{3}, draws [01]\.\d{3} \(4 games; as black"),
    "model_opponent_othello.py": (
        (),
        r"opponent: win rate vs random [01]\.\d{3}, draws [01]\.\d{3} \(4 games\); "
        r"unmasked first choice illegal in [\d.]+% of [1-9]\d* decisions",
    ),
    "batched_opponent.py": (
        (),
        r"batched lgagent opponent in the native vector env \(64 envs, cpu\): env-steps/s [\d,]+ vs "
        r"Othello-v0 with ModelPolicy [\d,]+ \([\d.]+x\); model win rate vs random [01]\.\d{3}, draws",
    ),
    "sb3_setcomp.py": (
        ("stable_baselines3",),
        r"PPO on SetComplement-v0 \(vocab 8\), 256 steps: success rate before [01]\.\d{3}, after",
    ),
}


def run_example(name: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_every_example_has_a_case():
    assert sorted(p.name for p in EXAMPLES.glob("*.py") if p.name != "lgagent_model.py") == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_smoke(name):
    needs, expected = CASES[name]
    for module in needs:
        pytest.importorskip(module)
    text = (EXAMPLES / name).read_text()
    assert text.startswith('"""') and "--smoke" in text.split('"""')[1], "documented at its top"
    done = run_example(name, "--smoke")
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert re.search(expected, last), last
    assert "nan" not in last.lower()


def test_model_examples_refuse_a_run_without_checkpoint(tmp_path):
    for name in ("model_opponent_othello.py", "pettingzoo_selfplay.py", "batched_opponent.py"):
        done = run_example(name, "--run", str(tmp_path), "--smoke", timeout=120)
        assert done.returncode != 0
        assert f"{tmp_path} holds no checkpoint.pt" in done.stderr
        assert "Traceback" not in done.stderr


def test_board_extractor_reads_the_board():
    pytest.importorskip("sb3_contrib")
    sys.path.insert(0, str(EXAMPLES))
    try:
        from sb3_maskable_ppo_othello import BoardExtractor
    finally:
        sys.path.remove(str(EXAMPLES))
    import torch

    import othello_env  # noqa: F401

    space = gym.make("Othello-v0").observation_space  # Box (3, 8, 8) int8
    extractor = BoardExtractor(space, features_dim=32)
    boards = torch.from_numpy(np.stack([space.sample() for _ in range(5)]))
    features = extractor(boards)
    assert features.shape == (5, 32) and torch.isfinite(features).all()
    # the features depend on the board (a plain flatten of zeros would not)
    assert not torch.equal(extractor(boards[:1]), extractor(torch.zeros_like(boards[:1])))
