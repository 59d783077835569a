"""The native Othello vector env (othello_env.vector): SyncVectorEnv equivalence, autoreset, errors."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import othello_env  # noqa: F401  (registers Othello-v0)
from othello_env.env import OthelloEnv
from othello_env.vector import OthelloVectorEnv


def played(moves):
    """The history in an info["moves"] (int8 (60,), -1 padded) as a list of squares."""
    moves = np.asarray(moves)
    return moves[moves >= 0].tolist()


def masked_actions(rng, mask, p_unmasked=0.0):
    """A random legal action per row; with probability p_unmasked any action 0..64 instead."""
    out = np.empty(mask.shape[0], np.int64)
    for i, row in enumerate(mask):
        legal = np.flatnonzero(row)
        if legal.size == 0 or rng.random() < p_unmasked:
            out[i] = rng.integers(65)
        else:
            out[i] = rng.choice(legal)
    return out


def test_make_vec_returns_native_env():
    envs = gym.make_vec("Othello-v0", num_envs=3, vectorization_mode="vector_entry_point")
    assert isinstance(envs, OthelloVectorEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert isinstance(gym.make_vec("Othello-v0", num_envs=2), OthelloVectorEnv)  # the default mode
    assert envs.single_action_space == gym.spaces.Discrete(65)
    assert envs.action_space == gym.spaces.MultiDiscrete([65] * 3)
    assert envs.observation_space.shape == (3, 3, 8, 8) and envs.observation_space.dtype == np.int8
    obs, info = envs.reset(seed=0)
    assert obs.shape == (3, 3, 8, 8) and obs.dtype == np.int8
    assert info["action_mask"].shape == (3, 65) and info["action_mask"].dtype == np.int8
    assert (np.flatnonzero(info["action_mask"][0]) == [19, 26, 37, 44]).all()


@pytest.mark.parametrize(
    "agent_color,illegal_action,p_unmasked,opponent",
    [("black", "terminate", 0.0, None), ("random", "terminate", 0.03, None),
     ("white", "raise", 0.0, None), ("random", "terminate", 0.0, "greedy"),
     ("random", "raise", 0.0, "alphabeta")],
)
def test_matches_sync_vector_env_step_for_step(agent_color, illegal_action, p_unmasked, opponent):
    """Env i of the native env plays like Othello-v0 with seed s + i, built-in opponents included."""
    n, steps = 8, 260
    kwargs = {"agent_color": agent_color, "illegal_action": illegal_action, "opponent": opponent}
    native = gym.make_vec(
        "Othello-v0", num_envs=n, vectorization_mode="vector_entry_point", **kwargs
    )
    sync = SyncVectorEnv([lambda: OthelloEnv(**kwargs) for _ in range(n)])
    assert sync.metadata["autoreset_mode"] == native.metadata["autoreset_mode"]
    o1, i1 = native.reset(seed=42)
    o2, i2 = sync.reset(seed=42)
    assert np.array_equal(o1, o2) and np.array_equal(i1["action_mask"], i2["action_mask"])
    rng = np.random.default_rng(1)
    seen = {"pass": 0, "illegal": 0, "end": 0, "autoreset": 0}
    for t in range(steps):
        actions = masked_actions(rng, i1["action_mask"], p_unmasked)
        seen["pass"] += int((i1["action_mask"][:, 64] == 1).sum())
        o1, r1, te1, tr1, i1 = native.step(actions)
        o2, r2, te2, tr2, i2 = sync.step(actions)
        assert np.array_equal(o1, o2), t
        assert np.array_equal(r1, r2) and np.array_equal(te1, te2) and np.array_equal(tr1, tr2), t
        # the one documented difference: a row that just ended may only pass (the next step
        # restarts it and ignores its action); the single env's final mask is all zero
        assert (i2["action_mask"][te1] == 0).all(), t
        expected = i2["action_mask"].copy()
        expected[te1, 64] = 1
        assert np.array_equal(i1["action_mask"], expected), t
        assert np.array_equal(native.action_masks(), expected.astype(bool)), t
        assert np.array_equal(np.stack([native.moves(i) for i in range(n)]), i2["moves"]), t
        for key in ("_action_mask", "illegal_action", "_illegal_action"):
            if key in i2:
                assert np.array_equal(i1[key], i2[key]), (t, key)
            else:  # every sync env reset this step, so none reported a step info
                assert not i1["_illegal_action"].any(), t
        seen["illegal"] += int(i1["illegal_action"].sum())
        seen["end"] += int(te1.sum())
        seen["autoreset"] += int((~i1["_illegal_action"]).sum())
    # the run covered whole games, autoresets and agent passes (and illegal moves when unmasked)
    assert seen["end"] >= n and seen["autoreset"] >= n and seen["pass"] > 0
    assert (seen["illegal"] > 0) == (p_unmasked > 0)


def test_moves_and_colours_match_the_single_env():
    native = OthelloVectorEnv(num_envs=4, agent_color="random")
    native.reset(seed=9)
    singles = [OthelloEnv(agent_color="random") for _ in range(4)]
    for i, env in enumerate(singles):
        _, info = env.reset(seed=9 + i)
        assert played(native.moves(i)) == played(info["moves"])
        assert native.colors()[i] == env.color


def test_autoreset_next_step_semantics():
    envs = OthelloVectorEnv(num_envs=2)
    obs, info = envs.reset(seed=0)
    # env 0 plays an illegal move and ends; env 1 plays on
    obs, r, term, trunc, info = envs.step(np.array([0, 19]))
    assert term.tolist() == [True, False] and r.tolist() == [-1.0, 0.0]
    assert info["illegal_action"].tolist() == [True, False]
    # the ended row may only pass (any action is ignored next step); no legal placement shown
    assert np.flatnonzero(info["action_mask"][0]).tolist() == [64] and obs[0, 2].sum() == 0
    assert np.array_equal(envs.action_masks(), info["action_mask"].astype(bool))
    # next step: env 0 restarts (its action ignored, reward 0, fresh start), env 1 steps
    obs, r, term, trunc, info = envs.step(
        np.array([5, int(np.flatnonzero(info["action_mask"][1])[0])])
    )
    assert term.tolist() == [False, False] and r[0] == 0.0
    assert info["_illegal_action"].tolist() == [False, True]
    assert played(envs.moves(0)) == [] and np.flatnonzero(info["action_mask"][0]).tolist() == [
        19,
        26,
        37,
        44,
    ]


def test_reset_mask_and_seed_list():
    envs = OthelloVectorEnv(num_envs=3, agent_color="white")
    _, info = envs.reset(seed=[5, 6, 7])
    firsts = [played(envs.moves(i)) for i in range(3)]
    single = OthelloEnv(agent_color="white")
    assert [played(single.reset(seed=s)[1]["moves"]) for s in (5, 6, 7)] == firsts
    envs.step(np.array([np.flatnonzero(m)[0] for m in info["action_mask"]]))
    before = [played(envs.moves(i)) for i in range(3)]
    obs, info = envs.reset(
        seed=[None, 6, None], options={"reset_mask": np.array([False, True, False])}
    )
    assert info["_action_mask"].tolist() == [False, True, False]
    assert [played(envs.moves(i)) for i in range(3)] == [before[0], firsts[1], before[2]]
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": np.array([False, False, False])})
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": np.array([1, 1, 1])})
    with pytest.raises(ValueError, match="unknown reset option"):
        envs.reset(options={"moves": [19]})
    with pytest.raises(ValueError, match="3 entries"):
        envs.reset(seed=[1, 2])


def test_raise_mode_checks_before_changing_anything():
    envs = OthelloVectorEnv(num_envs=2, illegal_action="raise")
    _, info = envs.reset(seed=0)
    snapshot = pickle.dumps(envs)
    with pytest.raises(ValueError, match="illegal action 0 in env 1"):
        envs.step(np.array([19, 0]))
    assert pickle.dumps(envs) == snapshot


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_envs"):
        OthelloVectorEnv(num_envs=0)
    with pytest.raises(ValueError, match="act_batch.*vectorization_mode='sync'"):
        OthelloVectorEnv(num_envs=2, opponent=lambda o, i: 64)
    with pytest.raises(ValueError, match="unknown opponent 'minimax'; built-in opponents: random, greedy, alphabeta"):
        OthelloVectorEnv(num_envs=2, opponent="minimax")
    with pytest.raises(ValueError, match="render_mode"):
        OthelloVectorEnv(num_envs=2, render_mode="human")
    envs = OthelloVectorEnv(num_envs=2)
    with pytest.raises(ValueError, match="reset"):
        envs.step(np.array([19, 19]))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        envs.step(np.array([19]))
    with pytest.raises(ValueError, match="integer"):
        envs.step(np.array([19.0, 19.0]))
    with pytest.raises(ValueError, match="0..64"):
        envs.step(np.array([19, 65]))


def test_pickle_and_render():
    envs = OthelloVectorEnv(num_envs=2, render_mode="ansi")
    _, info = envs.reset(seed=1)
    clone = pickle.loads(pickle.dumps(envs))
    a = np.array([np.flatnonzero(m)[0] for m in info["action_mask"]])
    out1, out2 = envs.step(a), clone.step(a)
    assert np.array_equal(out1[0], out2[0]) and np.array_equal(
        out1[4]["action_mask"], out2[4]["action_mask"]
    )
    frames = envs.render()
    assert len(frames) == 2 and all(
        isinstance(f, str) and "agent (black) to move" in f for f in frames
    )
    rgb = OthelloVectorEnv(num_envs=2, render_mode="rgb_array")
    rgb.reset(seed=0)
    frames = rgb.render()
    assert len(frames) == 2 and frames[0].shape == (296, 296, 3) and frames[0].dtype == np.uint8


def test_sync_vectorization_takes_a_policy_opponent():
    seen = []

    def first_legal(obs, info):
        seen.append(len(played(info["moves"])))
        return int(np.flatnonzero(info["action_mask"])[0])

    envs = gym.make_vec("Othello-v0", num_envs=2, vectorization_mode="sync", opponent=first_legal)
    _, info = envs.reset(seed=0)
    _, _, _, _, info = envs.step(np.array([19, 37]))
    assert seen == [1, 1]  # each env's opponent replied to the agent's first move
    assert info["action_mask"].shape == (2, 65)


@pytest.mark.parametrize(
    "seed, match",
    [([1, -5], r"seed\[1\] must be None or a non-negative integer, got -5"),
     ([1, 2.5], r"seed\[1\] .* got 2.5"), ([1, "7"], r"seed\[1\] .* got '7'"),
     ([True, 1], r"seed\[0\]"), ("ab", "seed must be None, an integer or a list"),
     (2.5, "seed must be None, an integer or a list"), (-1, "non-negative")],
)
def test_bad_seeds_are_refused_before_anything_changes(seed, match):
    """Seed list entries are checked like the single env's seed (a -5 or 2.5 was taken mod 2**64 / cut)."""
    envs = OthelloVectorEnv(num_envs=2)
    envs.reset(seed=0)
    snapshot = pickle.dumps(envs)
    with pytest.raises(ValueError, match=match):
        envs.reset(seed=seed)
    assert pickle.dumps(envs) == snapshot


def test_moves_index_is_checked():
    """moves(-1) silently gave the last env's history and moves(2) an IndexError."""
    envs = OthelloVectorEnv(num_envs=2, agent_color="white")
    envs.reset(seed=0)
    assert len(played(envs.moves(np.int64(1)))) == 1
    for bad in (-1, 2, 1.0, True):
        with pytest.raises(ValueError, match=r"env index must be an integer in 0\.\.1"):
            played(envs.moves(bad))


def test_masked_categorical_sampling_never_sees_an_empty_mask():
    """A -inf masked torch Categorical over info["action_mask"] must give a distribution on every
    row, autoreset rows included (an all-zero row gave NaN probabilities)."""
    torch = pytest.importorskip("torch")
    envs = OthelloVectorEnv(num_envs=16)
    _, info = envs.reset(seed=4)
    gen = torch.Generator().manual_seed(0)
    ends = 0
    for _ in range(120):
        mask = torch.as_tensor(envs.action_masks())
        assert torch.equal(mask, torch.as_tensor(info["action_mask"]).bool())
        logits = torch.where(mask, torch.zeros(()), torch.tensor(float("-inf")))
        dist = torch.distributions.Categorical(logits=logits)  # raises on a NaN row
        assert not torch.isnan(dist.probs).any()
        actions = torch.multinomial(dist.probs, 1, generator=gen)[:, 0].numpy()
        _, _, term, _, info = envs.step(actions)
        assert not info["illegal_action"].any()  # sampled actions are legal, pass-only rows ignored
        ends += int(term.sum())
    assert ends >= 16  # autoreset rows were sampled from


def test_partial_reset_keeps_pending_rows_pass_only():
    envs = OthelloVectorEnv(num_envs=3)
    envs.reset(seed=0)
    _, _, term, _, info = envs.step(np.array([0, 0, 19]))  # rows 0 and 1 end (illegal)
    assert term.tolist() == [True, True, False]
    _, info = envs.reset(options={"reset_mask": np.array([True, False, False])})
    assert np.flatnonzero(info["action_mask"][1]).tolist() == [64]  # still pending its autoreset
    assert np.flatnonzero(info["action_mask"][0]).tolist() == [19, 26, 37, 44]
    assert np.array_equal(envs.action_masks(), info["action_mask"].astype(bool))


def test_moves_are_the_single_env_form():
    envs = OthelloVectorEnv(num_envs=2, agent_color="white")
    envs.reset(seed=0)
    m = envs.moves(0)
    assert m.shape == (60,) and m.dtype == np.int8 and m[0] in (19, 26, 37, 44) and (m[1:] == -1).all()
    m[1] = 5  # a copy: the env's history is untouched
    assert (envs.moves(0)[1:] == -1).all()


# -- batched policy opponents (the model one is in tests/othello_env/test_opponents.py) ----------------------


class Recorder:
    """A batched policy that wraps another and records what the env hands it."""

    def __init__(self, policy):
        self.policy, self.calls = policy, []

    def act_batch(self, masks, histories, rngs=None):
        self.calls.append((masks.copy(), np.array(histories), len(rngs)))
        return self.policy.act_batch(masks, histories, rngs)


@pytest.mark.parametrize("agent_color", ["white", "random"])
def test_batched_policy_opponent_equals_the_built_in_one(agent_color):
    """alphabeta draws nothing: make_policy("alphabeta") asked through act_batch must play exactly
    as opponent="alphabeta" inside the kernel, through resets (white: it opens), autoresets and
    partial resets; one act_batch call per step for the rows whose opponent is to move."""
    from othello_env.opponents import make_policy

    n = 6
    rec = Recorder(make_policy("alphabeta"))
    batched = OthelloVectorEnv(num_envs=n, agent_color=agent_color, opponent=rec)
    kernel = OthelloVectorEnv(num_envs=n, agent_color=agent_color, opponent="alphabeta")
    o1, i1 = batched.reset(seed=3)
    o2, i2 = kernel.reset(seed=3)
    assert np.array_equal(o1, o2) and np.array_equal(i1["action_mask"], i2["action_mask"])
    rng = np.random.default_rng(0)
    ends = 0
    for t in range(120):
        if t == 50:
            which = np.arange(n) % 2 == 0
            o1, i1 = batched.reset(seed=[7] * n, options={"reset_mask": which})
            o2, i2 = kernel.reset(seed=[7] * n, options={"reset_mask": which})
            assert np.array_equal(o1, o2)
        actions = masked_actions(rng, i1["action_mask"])
        calls = len(rec.calls)
        o1, r1, te1, _, i1 = batched.step(actions)
        o2, r2, te2, _, i2 = kernel.step(actions)
        assert np.array_equal(o1, o2) and np.array_equal(r1, r2) and np.array_equal(te1, te2), t
        assert np.array_equal(i1["action_mask"], i2["action_mask"]), t
        assert [played(batched.moves(i)) for i in range(n)] == [played(kernel.moves(i)) for i in range(n)]
        assert len(rec.calls) - calls <= 1, t  # one batched call per step at most
        ends += int(te1.sum())
    assert ends >= n
    masks, histories, n_rngs = rec.calls[-1]
    assert masks.dtype == bool and masks.shape[1] == 65 and not masks[:, 64].any()
    assert histories.dtype == np.int8 and histories.shape == (masks.shape[0], 60) and n_rngs == masks.shape[0]


def test_batched_policy_opponent_errors():
    class Illegal:
        def act_batch(self, masks, histories, rngs=None):
            return np.zeros(len(masks), np.int64)  # a1 is never legal early on

    class Short:
        def act_batch(self, masks, histories, rngs=None):
            return [19]

    envs = OthelloVectorEnv(num_envs=2, agent_color="white", opponent=Illegal())
    with pytest.raises(ValueError, match=r"illegal action 0 in env 0; legal: \[19, 26, 37, 44\]; reset"):
        envs.reset(seed=0)
    with pytest.raises(ValueError, match="reset"):
        envs.step(np.array([64, 64]))  # the env must be reset after a failed reply
    envs = OthelloVectorEnv(num_envs=2, agent_color="black", opponent=Short())
    _, info = envs.reset(seed=0)
    with pytest.raises(ValueError, match="must return 2 integer actions"):
        envs.step(np.array([19, 19]))
    with pytest.raises(ValueError, match="reset"):
        envs.step(np.array([19, 19]))


def test_an_oversized_num_envs_is_refused_before_allocating():
    with pytest.raises(ValueError, match="num_envs must be at most"):
        OthelloVectorEnv(num_envs=10**13)
