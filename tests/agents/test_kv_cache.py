"""agents.model.KVCache and the policies that play through it: the cached logits equal the
full forward pass for every switch, and games with the cache equal games without it.

Tolerance: float32 logits with and without the cache agree within atol 1e-5 (seen: about
1e-7; the two paths sum the same products in another order)."""

import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch

import othello_env  # noqa: F401  (registers Othello-v0)
from agents import GPT, GPTConfig, KVCache, ModelPolicy, preset
from agents.config import POSITIONS
from agents.policies import BatchedModelPolicy
from othello_env import generate_games
from othello_env.vector import OthelloVectorEnv
from train.analysis.play import match

ATOL = 1e-5  # float32, cache vs no cache

ALL_SWITCHES = [dict(norm=n, pos=p, mlp=m) for n, p, m in
                itertools.product(("pre", "post", "none"), POSITIONS, (True, False))]
# (alibi and the randomized schemes too: in evaluation their positions are plain, 0..T-1)


def small(**kw) -> GPTConfig:
    base = dict(vocab_size=13, block_size=10, n_layer=2, n_head=2, n_embd=16, dropout=0.1)
    return GPTConfig(**{**base, **kw})


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=ATOL)


# ----------------------------------------------------------------------------------------------
# The cache in the model


@pytest.mark.parametrize("kw", ALL_SWITCHES, ids=lambda kw: f"{kw['norm']}-{kw['pos']}-mlp{kw['mlp']}")
def test_cached_logits_equal_the_full_pass_for_every_switch(kw):
    torch.manual_seed(0)
    model = GPT(small(**kw)).eval()  # dropout 0.1, off in eval mode
    x = torch.randint(0, 13, (3, 10))
    with torch.no_grad():
        full = model(x)  # (3, 10, 13)
        # a prefix at once, then one token at a time, up to the cap (block_size 10)
        cache = KVCache(model, 3)
        got = [model(x[:, :4], cache=cache)] + [model(x[:, t:t + 1], cache=cache) for t in range(4, 10)]
        _close(torch.cat(got, dim=1), full)
        assert cache.lengths.tolist() == [10, 10, 10]
        # rows at different lengths growing by different amounts (right padding), in any order
        cache = KVCache(model, 5)
        model(x[[0], :4], cache=cache, rows=[3])
        model(x[[2], :1], cache=cache, rows=[0])
        new = torch.zeros(3, 3, dtype=torch.long)
        new[0, :3], new[1, :2], new[2, :1] = x[0, 4:7], x[1, :2], x[2, 1:2]
        out = model(new, cache=cache, rows=[3, 1, 0], n_new=[3, 2, 1])  # (3, 3, 13)
        _close(out[0], full[0, 4:7])
        _close(out[1, :2], full[1, :2])
        _close(out[2, :1], full[2, 1:2])
        assert cache.lengths.tolist() == [2, 2, 0, 7, 0]


def test_reset_restarts_one_row_and_leaves_the_others():
    torch.manual_seed(1)
    model = GPT(small(pos="rope")).eval()
    x = torch.randint(0, 13, (2, 8))
    y = torch.randint(0, 13, (1, 8))
    with torch.no_grad():
        full, full_y = model(x), model(y)
        cache = KVCache(model, 2)
        model(x[:, :5], cache=cache)
        cache.reset([1])  # row 1 starts another game (an autoreset)
        _close(model(y[:, :3], cache=cache, rows=[1]), full_y[:, :3])
        _close(model(x[[0], 5:], cache=cache, rows=[0]), full[[0], 5:])
        _close(model(y[:, 3:], cache=cache, rows=[1]), full_y[:, 3:])


def test_copy_rows_and_grow():
    torch.manual_seed(2)
    model = GPT(small()).eval()
    x = torch.randint(0, 13, (2, 6))
    x[1, :3] = x[0, :3]  # two games with a common prefix
    with torch.no_grad():
        full = model(x)
        cache = KVCache(model, 1)
        model(x[[0], :3], cache=cache)
        cache.grow(2)
        assert len(cache) == 3 and cache.lengths.tolist() == [3, 0, 0]
        cache.copy_rows([0], [2])
        new = torch.stack([x[0, 3:], x[1, 3:]])
        _close(model(new, cache=cache, rows=[0, 2]), full[:, 3:])


def test_attention_probabilities_through_the_cache():
    torch.manual_seed(3)
    model = GPT(small(norm="post")).eval()
    x = torch.randint(0, 13, (2, 7))
    with torch.no_grad():
        _, attn = model(x, return_attn=True)
        cache = KVCache(model, 2)
        model(x[:, :6], cache=cache)
        logits, att_step = model(x[:, 6:], cache=cache, return_attn=True)
    for full, step in zip(attn, att_step):  # the last query's attention over keys 0..6
        assert step.shape == (2, 2, 1, 7)
        _close(step[:, :, 0], full[:, :, 6])


def test_the_cap_and_bad_steps_are_value_errors():
    model = GPT(small()).eval()
    cache = KVCache(model, 2)
    with torch.no_grad():
        model(torch.ones(2, 9, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="cap is block_size 10"):
            model(torch.ones(2, 2, dtype=torch.long), cache=cache)  # 11 positions
        lengths = cache.lengths.copy()
        with pytest.raises(ValueError, match="distinct rows"):
            model(torch.ones(2, 1, dtype=torch.long), cache=cache, rows=[0, 0])
        with pytest.raises(ValueError, match="distinct rows"):
            model(torch.ones(1, 1, dtype=torch.long), cache=cache, rows=[2])
        with pytest.raises(ValueError, match="n_new must lie in 1..1"):
            model(torch.ones(2, 1, dtype=torch.long), cache=cache, n_new=[0, 1])
        assert (cache.lengths == lengths).all()  # a refused step changes nothing
        model(torch.ones(2, 1, dtype=torch.long), cache=cache)  # the 10th position fits
        assert cache.lengths.tolist() == [10, 10]
        with pytest.raises(ValueError, match="need a cache"):
            model(torch.ones(2, 1, dtype=torch.long), rows=[0, 1])


# ----------------------------------------------------------------------------------------------
# The policies: the same decisions with and without the cache


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return GPT(preset("tiny", dropout=0.0)).eval()


def _single_env_run(model, use_cache, steps=400, block_size_model=None):
    policy = ModelPolicy(model, seed=0, use_cache=use_cache)
    env = gym.make("Othello-v0", agent_color="random", opponent=policy)
    rng = np.random.default_rng(0)
    _, info = env.reset(seed=0)
    trace = []
    for _ in range(steps):
        m = info["action_mask"]
        obs, reward, term, trunc, info = env.step(int((rng.random(m.shape) * m).argmax()))
        trace.append((obs.tobytes(), reward, term))
        if term or trunc:
            _, info = env.reset()
    return trace, policy


def test_model_policy_in_othello_v0_plays_the_same_games_with_and_without_the_cache(tiny):
    with_cache, p = _single_env_run(tiny, True)
    without, q = _single_env_run(tiny, False)
    assert sum(t[2] for t in with_cache) >= 5  # several episodes: the cache outlives resets
    assert with_cache == without
    assert (p.n_decisions, p.n_illegal_choices) == (q.n_decisions, q.n_illegal_choices)
    assert q._last_logits.cache is None and len(p._last_logits.cache) <= 8  # rows reused


def test_model_policy_logits_follow_any_history(tiny):
    p, q = ModelPolicy(tiny, seed=0), ModelPolicy(tiny, seed=0, use_cache=False)
    games = generate_games(3, seed=5)
    asked = [games[0, :t] for t in range(1, 40)]  # one game move by move
    asked += [games[1, :30], games[0, :10], games[0, :10]]  # another game, an earlier position, again
    asked += [games[2, :t] for t in (5, 4, 50)]  # backwards, and a jump
    for moves in asked:
        _close(p.last_logits(moves), q.last_logits(moves))


def test_new_weights_empty_the_cache():
    torch.manual_seed(4)
    model = GPT(preset("tiny", dropout=0.0)).eval()
    p = ModelPolicy(model, seed=0)
    moves = generate_games(1, seed=6)[0]
    before = p.last_logits(moves[:20])
    with torch.no_grad():
        for w in model.parameters():
            w.mul_(1.5)  # in place, as an optimiser step
    after = p.last_logits(moves[:21])
    _close(after, ModelPolicy(model, seed=0, use_cache=False).last_logits(moves[:21]))
    assert not torch.allclose(before, p.last_logits(moves[:20]))


def _vector_run(model, use_cache, n=24, steps=150):
    policy = BatchedModelPolicy(model, seed=0, use_cache=use_cache)
    envs = OthelloVectorEnv(num_envs=n, agent_color="random", opponent=policy)
    rng = np.random.default_rng(1)
    obs, info = envs.reset(seed=0)
    trace = [obs.copy()]
    ends = 0
    for _ in range(steps):
        a = (rng.random(info["action_mask"].shape) * info["action_mask"]).argmax(axis=1)
        obs, reward, term, trunc, info = envs.step(a)
        trace += [obs.copy(), reward.copy(), term.copy()]
        ends += int(term.sum())
    return trace, ends, policy


def test_batched_policy_in_the_vector_env_through_autoresets(tiny):
    a, ends, p = _vector_run(tiny, True)
    b, _, q = _vector_run(tiny, False)
    assert ends >= 24  # every row played past at least one autoreset
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert (p.n_decisions, p.n_illegal_choices) == (q.n_decisions, q.n_illegal_choices)
    assert len(p._last_logits.cache) <= 2 * 24  # finished games' rows are reused


def test_match_results_identical_with_and_without_the_cache(tiny):
    def pol(seed, use_cache):
        return BatchedModelPolicy(tiny, seed=seed, use_cache=use_cache)

    assert match(pol(0, True), "random", 40, seed=2) == match(pol(0, False), "random", 40, seed=2)
    # model against model (each side its own cache) and a single-game policy beside it
    a = match(pol(0, True), pol(1, True), 20, seed=3, opening=4)
    b = match(pol(0, False), pol(1, False), 20, seed=3, opening=4)
    assert a == b
    single = [ModelPolicy(tiny, seed=0, use_cache=c) for c in (True, False)]
    assert match(single[0], "greedy", 12, seed=4) == match(single[1], "greedy", 12, seed=4)


def test_a_block_shorter_than_the_game_reads_the_last_block_size_moves():
    torch.manual_seed(5)
    model = GPT(preset("tiny", block_size=16, dropout=0.0)).eval()
    p, q = ModelPolicy(model, seed=0), ModelPolicy(model, seed=0, use_cache=False)
    game = generate_games(1, seed=7)[0]
    from othello_env.tokens import squares_to_tokens

    for t in (10, 16, 17, 40):
        want = model(torch.as_tensor(squares_to_tokens(game[:t])[-16:])[None])[0, -1]
        _close(p.last_logits(game[:t]), want.detach())
        _close(q.last_logits(game[:t]), want.detach())
    # whole games past the cap: the same moves with and without the cache
    assert _single_env_run(model, True, steps=150)[0] == _single_env_run(model, False, steps=150)[0]
    pol = [BatchedModelPolicy(model, seed=0, use_cache=c) for c in (True, False)]
    assert match(pol[0], "random", 16, seed=1) == match(pol[1], "random", 16, seed=1)
