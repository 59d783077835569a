"""setcomp_env: the NumPy core, SetComplement-v0 and its native vector env."""

import itertools
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import setcomp_env
from setcomp_env import SetComplementEnv, SetComplementVectorEnv, complement_masks, sample_sequences

ENV_ID = "setcomp_env:SetComplement-v0"


def seq(moves) -> list[int]:
    """The sequence in ``info["moves"]`` (int64 (vocab_size,), tokens then -1), checking that form."""
    moves = np.asarray(moves)
    assert moves.dtype == np.int64 and moves.ndim == 1
    k = int((moves >= 0).sum())
    assert (moves[:k] >= 0).all() and (moves[k:] == -1).all()  # tokens first, then the padding
    return moves[:k].tolist()


# ---------------------------------------------------------------- core


def brute_force_masks(seqs, v):
    n, length = seqs.shape
    out = np.zeros((n, length, v), dtype=bool)
    for i in range(n):
        for p in range(length):
            seen = set(seqs[i, : p + 1].tolist())
            out[i, p] = [k not in seen for k in range(v)]
    return out


@pytest.mark.parametrize("n,length,v", [(5, 3, 7), (20, 16, 16), (1, 1, 1), (4, 0, 5), (0, 2, 3)])
def test_sample_sequences_shape_distinct_range(n, length, v):
    s = sample_sequences(n, length, v, seed=3)
    assert s.shape == (n, length) and np.issubdtype(s.dtype, np.integer)
    for row in s:
        assert len(set(row.tolist())) == length
        assert all(0 <= t < v for t in row)


def test_sample_sequences_deterministic_and_seed_dependent():
    a = sample_sequences(50, 6, 10, seed=7)
    assert np.array_equal(a, sample_sequences(50, 6, 10, seed=7))
    assert not np.array_equal(a, sample_sequences(50, 6, 10, seed=8))
    ss = np.random.SeedSequence(1, spawn_key=(2,))
    assert np.array_equal(sample_sequences(3, 2, 4, seed=ss), sample_sequences(3, 2, 4, seed=ss))


def test_sample_sequences_uniform_over_ordered_selections():
    # 12 ordered pairs of distinct tokens from 4: each should be near 1/12 of 24000 draws
    s = sample_sequences(24000, 2, 4, seed=0)
    counts = {pair: 0 for pair in itertools.permutations(range(4), 2)}
    for a, b in s.tolist():
        counts[(a, b)] += 1
    assert set(counts) == set(itertools.permutations(range(4), 2))
    assert all(abs(c - 2000) < 200 for c in counts.values()), counts


@pytest.mark.parametrize("args,match", [
    ((3, 5, 4), "cannot exceed"),
    ((-1, 2, 4), "n must be >= 0"),
    ((3, 2, 0), "vocab_size must be >= 1"),
    ((3, 2.0, 4), "length must be an integer"),
    ((3, -1, 4), "length must be >= 0"),
])
def test_sample_sequences_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        sample_sequences(*args)


def test_sample_sequences_rejects_generator_seed():
    with pytest.raises(ValueError, match="Generator"):
        sample_sequences(2, 2, 4, seed=np.random.default_rng(0))


@pytest.mark.parametrize("v,length", [(5, 5), (16, 15), (9, 1)])
def test_complement_masks_match_brute_force(v, length):
    seqs = sample_sequences(30, length, v, seed=v)
    got = complement_masks(seqs, v)
    assert got.dtype == np.bool_ and got.shape == (30, length, v)
    assert np.array_equal(got, brute_force_masks(seqs, v))
    # p + 1 tokens seen -> v - (p + 1) absent
    assert np.array_equal(got.sum(-1), np.broadcast_to(v - 1 - np.arange(length), (30, length)))


def test_complement_masks_worked_example():
    # ANCHORS example shifted to 0-based: (0, 2, 4) over 5 tokens -> 1 and 3 absent at the end
    m = complement_masks(np.array([[0, 2, 4]]), 5)
    assert m[0, 2].tolist() == [False, True, False, True, False]
    assert m[0, 0].tolist() == [False, True, True, True, True]


def test_complement_masks_accepts_lists_and_empty():
    assert complement_masks([[1, 0]], 3).shape == (1, 2, 3)
    assert complement_masks(np.zeros((3, 0), dtype=np.int64), 4).shape == (3, 0, 4)


@pytest.mark.parametrize("seqs,v,match", [
    (np.array([1, 2]), 4, "2-D"),
    (np.array([[0.0, 1.0]]), 4, "integers"),
    (np.array([[0, 4]]), 4, r"\[0, 4\)"),
    (np.array([[-1, 2]]), 4, r"\[0, 4\)"),
    (np.array([[0, 1]]), 0, "vocab_size"),
])
def test_complement_masks_bad_input(seqs, v, match):
    with pytest.raises(ValueError, match=match):
        complement_masks(seqs, v)


def test_core_imports_no_torch_or_gymnasium():
    code = ("import sys, importlib.util; spec = importlib.util.spec_from_file_location('c', "
            f"{setcomp_env.core.__file__!r}); m = importlib.util.module_from_spec(spec); "
            "spec.loader.exec_module(m); assert 'torch' not in sys.modules; "
            "assert 'gymnasium' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# ---------------------------------------------------------------- single env


def test_make_without_prior_import():
    code = (f"import gymnasium as gym; e = gym.make({ENV_ID!r}, vocab_size=5); "
            "o, i = e.reset(seed=0); print(o.tolist(), type(e.unwrapped).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[5, 5, 5, 5, 5] SetComplementEnv"


@pytest.mark.parametrize("kwargs", [{}, {"vocab_size": 1}, {"vocab_size": 6, "start_length": 3},
                                    {"vocab_size": 4, "render_mode": "ansi"}])
def test_check_env_clean(kwargs):
    env = gym.make(ENV_ID, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


def test_default_options():
    # the documented defaults: vocab_size defaults to 16, episodes start empty (start_length 0)
    env = gym.make(ENV_ID)
    obs, info = env.reset(seed=0)
    assert env.action_space == gym.spaces.Discrete(16) and obs.shape == (16,)
    assert (obs == 16).all() and env.unwrapped.pad_id == 16 and seq(info["moves"]) == []
    assert info["moves"].shape == (16,)
    vec = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point")
    vobs, vinfo = vec.reset(seed=0)
    assert vobs.shape == (2, 16) and (vobs == 16).all() and vinfo["action_mask"].all()


def test_docstring_sections():
    # Gymnasium's sections, in Gymnasium's order (CartPoleEnv's docstring)
    sections = ["Description", "Action Space", "Observation Space", "Rewards", "Starting State",
                "Episode End", "Arguments", "Version History"]
    doc = SetComplementEnv.__doc__
    assert all(f"## {s}" in doc for s in sections), [s for s in sections if f"## {s}" not in doc]
    assert [doc.index(f"## {s}") for s in sections] == sorted(doc.index(f"## {s}") for s in sections)
    # the Arguments section is one bullet per constructor argument (no stray paragraph between)
    args = doc[doc.index("## Arguments"):doc.index("## Version History")]
    bullets = [ln.strip() for ln in args.splitlines() if ln.strip().startswith("* ``")]
    assert [b.split("``")[1] for b in bullets] == ["vocab_size", "start_length", "illegal_action",
                                                   "render_mode"]


def test_perfect_play_succeeds():
    env = gym.make(ENV_ID, vocab_size=6, start_length=2)
    obs, info = env.reset(seed=4)
    assert len(seq(info["moves"])) == 2 and obs[2:].tolist() == [6] * 4
    assert info["action_mask"].dtype == np.int8 and info["action_mask"].sum() == 4
    total, done, steps = 0.0, False, 0
    while not done:
        a = int(np.flatnonzero(info["action_mask"])[0])
        obs, r, done, trunc, info = env.step(a)
        assert not trunc
        total += r
        steps += 1
    assert steps == 4 and total == 4.0 and info["success"]
    assert sorted(seq(info["moves"])) == list(range(6)) and obs.tolist() == seq(info["moves"])
    assert info["action_mask"].sum() == 0 and info["illegal_action"] is False


def test_moves_observation_and_masks_agree():
    env = SetComplementEnv(vocab_size=5)
    obs, info = env.reset(seed=1)
    for a in (3, 0, 4):
        obs, r, term, trunc, info = env.step(a)
    assert r == 1.0 and not term
    assert info["moves"].tolist() == [3, 0, 4, -1, -1] and seq(info["moves"]) == [3, 0, 4]
    assert obs.tolist() == [3, 0, 4, 5, 5]
    assert info["action_mask"].tolist() == [0, 1, 1, 0, 0]
    assert env.action_masks().tolist() == [False, True, True, False, False]
    assert env.observation_space.contains(obs)


def test_illegal_action_ends_episode():
    env = SetComplementEnv(vocab_size=5)
    env.reset(seed=0)
    env.step(2)
    obs, r, term, trunc, info = env.step(2)
    assert (r, term, trunc) == (-1.0, True, False)
    assert info["illegal_action"] is True and seq(info["moves"]) == [2] and not info["success"]
    with pytest.raises(ValueError, match="reset"):
        env.step(1)


def test_illegal_action_raise_mode():
    env = gym.make(ENV_ID, vocab_size=4, illegal_action="raise")
    env.reset(seed=0)
    env.step(1)
    with pytest.raises(ValueError, match="already in the sequence"):
        env.step(1)


def test_start_length_and_reset_option():
    env = SetComplementEnv(vocab_size=8, start_length=3)
    _, info = env.reset(seed=2)
    assert len(seq(info["moves"])) == 3 and len(set(seq(info["moves"]))) == 3
    _, info = env.reset(options={"start_length": 7})
    assert len(seq(info["moves"])) == 7
    _, info = env.reset()
    assert len(seq(info["moves"])) == 3
    with pytest.raises(ValueError, match="start_length"):
        env.reset(options={"start_length": 8})


def test_reset_from_given_moves():
    env = SetComplementEnv(vocab_size=5, start_length=2)
    obs, info = env.reset(seed=0, options={"moves": [4, 1, 0]})
    assert seq(info["moves"]) == [4, 1, 0] and obs.tolist() == [4, 1, 0, 5, 5]
    assert info["action_mask"].tolist() == [0, 0, 1, 1, 0]
    assert env.step(1)[1:3] == (-1.0, True)
    _, info = env.reset(options={"moves": []})
    assert seq(info["moves"]) == []


@pytest.mark.parametrize("options,match", [
    ({"moves": [1, 1]}, "repeats"),
    ({"moves": [0, 9]}, "not a token"),
    ({"moves": [0, 1, 2, 3, 4]}, "every token"),
    ({"moves": [[0], [1]]}, "flat list"),
    ({"moves": [0.5]}, "flat list"),
    ({"moves": [0], "start_length": 1}, "not both"),
])
def test_reset_bad_moves(options, match):
    with pytest.raises(ValueError, match=match):
        SetComplementEnv(vocab_size=5).reset(seed=0, options=options)
    with pytest.raises(ValueError, match=match):
        SetComplementVectorEnv(2, vocab_size=5).reset(seed=0, options=options)


def test_reset_seed_determinism():
    env = SetComplementEnv(vocab_size=10, start_length=5)
    a = seq(env.reset(seed=11)[1]["moves"])
    assert seq(env.reset(seed=11)[1]["moves"]) == a
    assert any(seq(env.reset(seed=s)[1]["moves"]) != a for s in range(12, 20))


def test_render_ansi():
    env = gym.make(ENV_ID, vocab_size=4, render_mode="ansi")
    env.reset(seed=0, options={"start_length": 0})
    env.step(2)
    assert env.render() == "seen (1/4): 2 | absent: 0 1 3\n"


@pytest.mark.parametrize("kwargs,match", [
    ({"vocab_size": 0}, "vocab_size"),
    ({"vocab_size": 4, "start_length": 4}, "start_length"),
    ({"start_length": -1}, "start_length"),
    ({"illegal_action": "ignore"}, "illegal_action"),
    ({"render_mode": "human"}, "render_mode"),
    ({"vocab_size": 3.5}, "vocab_size"),
])
def test_env_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SetComplementEnv(**kwargs)
    with pytest.raises(ValueError, match=match):
        SetComplementVectorEnv(2, **kwargs)


def test_env_bad_action():
    env = SetComplementEnv(vocab_size=4)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="0..3"):
        env.step(4)


# ---------------------------------------------------------------- vector env


def _assert_infos_equal(a, b, ended=None):
    """SyncVectorEnv's infos ``a`` == the vector env's ``b``, except the masks of the ``ended`` rows
    (the vector env allows every action there: the next step autoresets them)."""
    assert set(a) == set(b), (set(a), set(b))
    if ended is not None and ended.any():
        assert (b["action_mask"][ended] == 1).all()
        a, b = dict(a), dict(b)
        a["action_mask"], b["action_mask"] = a["action_mask"][~ended], b["action_mask"][~ended]
    for k in a:
        if a[k].dtype == object:
            assert a[k].tolist() == b[k].tolist(), k
        else:
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


@pytest.mark.parametrize("v,start,seed", [(5, 0, 0), (7, 3, 1), (1, 0, 2), (3, 2, 3)])
def test_vector_env_equals_sync_vector_env(v, start, seed):
    n = 6
    ref = SyncVectorEnv(
        [lambda: SetComplementEnv(vocab_size=v, start_length=start) for _ in range(n)],
        autoreset_mode=AutoresetMode.NEXT_STEP)
    vec = SetComplementVectorEnv(n, vocab_size=v, start_length=start)
    o1, i1 = ref.reset(seed=seed)
    o2, i2 = vec.reset(seed=seed)
    assert o1.dtype == o2.dtype and np.array_equal(o1, o2)
    _assert_infos_equal(i1, i2)
    rng = np.random.default_rng(seed)
    saw_illegal = saw_success = False
    for t in range(60):
        if t % 3 == 0:  # unmasked actions: illegal moves happen
            actions = rng.integers(0, v, size=n)
        else:  # masked: episodes reach success
            assert vec.action_masks().any(axis=1).all()  # no all-masked row, ended rows included
            actions = np.array([rng.choice(np.flatnonzero(m)) for m in vec.action_masks()])
        if t in (30, 45):  # mid-run reset of a subset, with a seed list, then given moves
            mask = np.arange(n) % 2 == (t == 45)
            seeds = [100 + i for i in range(n)] if t == 30 else None
            opts = {} if t == 30 else {"moves": list(range(v - 1))[::-1]}
            o1, i1 = ref.reset(seed=seeds, options={"reset_mask": mask.copy(), **opts})
            o2, i2 = vec.reset(seed=seeds, options={"reset_mask": mask.copy(), **opts})
            assert np.array_equal(o1, o2)
            _assert_infos_equal(i1, i2)
        r1 = ref.step(actions)
        r2 = vec.step(actions)
        for x, y in zip(r1[:4], r2[:4]):
            assert x.dtype == y.dtype and np.array_equal(x, y), t
        _assert_infos_equal(r1[4], r2[4], ended=r2[2] | r2[3])
        saw_illegal |= bool(r2[4].get("illegal_action", np.zeros(1, bool)).any())
        saw_success |= bool(r2[4]["success"].any())
    assert saw_success and (saw_illegal or v == 1)


def test_make_vec_uses_native_vector_env():
    env = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", vocab_size=4)
    assert isinstance(env.unwrapped, SetComplementVectorEnv)
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 4) and info["action_mask"].dtype == np.int8
    assert env.observation_space.contains(obs)


def test_vector_env_raise_mode_and_render():
    env = SetComplementVectorEnv(2, vocab_size=3, illegal_action="raise", render_mode="ansi")
    env.reset(seed=0)
    env.step(np.array([0, 1]))
    assert env.render() == ("seen (1/3): 0 | absent: 1 2\n", "seen (1/3): 1 | absent: 0 2\n")
    with pytest.raises(ValueError, match="sub-env 1"):
        env.step(np.array([2, 1]))


def test_vector_env_bad_input():
    env = SetComplementVectorEnv(2, vocab_size=3)
    with pytest.raises(ValueError, match="reset"):
        env.step(np.array([0, 1]))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="0..2"):
        env.step(np.array([0, 3]))
    with pytest.raises(ValueError, match="num_envs"):
        env.reset(seed=[1])
    with pytest.raises(ValueError, match="num_envs"):
        SetComplementVectorEnv(0)


def test_vector_env_all_false_reset_mask_rejected_as_sync_vector_env():
    ref = SyncVectorEnv([lambda: SetComplementEnv(vocab_size=3) for _ in range(2)],
                        autoreset_mode=AutoresetMode.NEXT_STEP)
    vec = SetComplementVectorEnv(2, vocab_size=3)
    for env in (ref, vec):
        env.reset(seed=0)
        with pytest.raises(ValueError, match="reset_mask"):
            env.reset(options={"reset_mask": np.zeros(2, dtype=bool)})


def test_render_rgb_array_as_sb3_make_vec_env_asks():
    """SB3's make_vec_env passes render_mode="rgb_array" (a ValueError broke it)."""
    env = gym.make(ENV_ID, vocab_size=20, render_mode="rgb_array")
    env.reset(options={"moves": [3, 17]})
    img = env.render()
    assert img.dtype == np.uint8 and img.shape == (32, 256, 3)  # 2 rows of 16 cells of 16 px
    cell = lambda t: img[(t // 16) * 16 + 8, (t % 16) * 16 + 8].tolist()  # noqa: E731
    assert cell(3) == [40, 70, 160] and cell(17) == [240, 150, 0] and cell(5) == [235, 235, 235]
    assert cell(25) == [90, 90, 90]  # past the vocabulary
    small = gym.make(ENV_ID, vocab_size=4, render_mode="rgb_array")
    small.reset(seed=0)
    assert small.render().shape == (16, 64, 3)


def test_vector_env_moves_action_masks_and_rgb_frames():
    vec = SetComplementVectorEnv(2, vocab_size=5, start_length=2, render_mode="rgb_array")
    _, info = vec.reset(seed=3)
    assert [vec.moves(i).tolist() for i in range(2)] == info["moves"].tolist()
    assert info["moves"].dtype == np.int64 and info["moves"].shape == (2, 5)
    assert all(len(seq(vec.moves(i))) == 2 for i in range(2)) and (info["moves"][:, 2:] == -1).all()
    assert np.array_equal(vec.action_masks(), info["action_mask"].astype(bool))
    frames = vec.render()
    assert len(frames) == 2 and frames[0].shape == (16, 80, 3) and frames[0].dtype == np.uint8
    for bad in (-1, 2, 1.0, True):
        with pytest.raises(ValueError, match=r"env index must be an integer in 0\.\.1"):
            vec.moves(bad)


def test_vector_env_ended_rows_sample_from_a_masked_categorical():
    # NEXT_STEP autoreset: a row that just ended is reset by the next step, which ignores its
    # action; its mask must let a -inf masked Categorical sample (an all-zero row gave NaN)
    torch = pytest.importorskip("torch")
    vec = gym.make_vec(ENV_ID, num_envs=8, vocab_size=3, vectorization_mode="vector_entry_point")
    _, info = vec.reset(seed=0)
    gen = torch.Generator().manual_seed(0)
    ended_seen = 0
    for _ in range(20):
        mask = torch.from_numpy(info["action_mask"].astype(bool))
        assert torch.equal(mask, torch.from_numpy(vec.action_masks()))
        logits = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        assert torch.isfinite(probs).all()
        actions = torch.multinomial(probs, 1, generator=gen).squeeze(1).numpy()
        obs, rewards, term, trunc, info = vec.step(actions)
        ended = term | trunc
        ended_seen += int(ended.sum())
        assert (info["action_mask"][ended] == 1).all()  # every action, ignored by the next step
        assert not (info["action_mask"][~ended] == 0).all(axis=1).any()
        if ended.any():  # the next step restarts those rows whatever their action, reward 0
            obs2, r2, t2, _, info2 = vec.step(np.zeros(8, dtype=np.int64))
            assert (r2[ended] == 0).all() and not t2[ended].any() and (obs2[ended] == 3).all()
            assert (info2["moves"][ended] == -1).all() and info2["action_mask"][ended].all()
            info = info2
    assert ended_seen > 0


def test_info_moves_stack_into_a_fixed_size_buffer():
    # what a replay buffer does with infos (Tianshou): stack every step's value into one array
    env = SetComplementEnv(vocab_size=6)
    _, info = env.reset(seed=0)
    rows = [info["moves"]]
    for a in (5, 2, 0):
        rows.append(env.step(a)[4]["moves"])
    stacked = np.stack(rows)
    assert stacked.shape == (4, 6) and stacked.dtype == np.int64
    assert [seq(r) for r in stacked] == [[], [5], [5, 2], [5, 2, 0]]


def test_tianshou_replay_buffer_stores_infos():
    # the library that broke on the growing list: its buffer stacks info["moves"] per step
    data = pytest.importorskip("tianshou.data")
    env = SetComplementEnv(vocab_size=5)
    obs, info = env.reset(seed=0)
    buf = data.ReplayBuffer(10)
    for a in (3, 1, 4):
        obs2, r, term, trunc, info = env.step(a)
        buf.add(data.Batch(obs=obs, act=a, rew=r, terminated=term, truncated=trunc, obs_next=obs2,
                           info=info))
        obs = obs2
    assert buf.info.moves[:3].tolist() == [[3, -1, -1, -1, -1], [3, 1, -1, -1, -1], [3, 1, 4, -1, -1]]


def test_bool_actions_and_unknown_reset_options_are_refused():
    s = SetComplementEnv(vocab_size=4)
    s.reset(seed=0)
    for a in (True, np.bool_(True)):
        with pytest.raises(ValueError, match="action must be a token"):
            s.step(a)
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['foo'\]"):
        s.reset(options={"foo": 1})


def test_oversized_sizes_are_refused_before_allocating():
    with pytest.raises(ValueError, match="vocab_size must lie in 1..65536"):
        SetComplementEnv(vocab_size=10**12)
    with pytest.raises(ValueError, match="num_envs x vocab_size must be at most"):
        SetComplementVectorEnv(num_envs=10**6, vocab_size=60000)
