"""agents.policies: RandomPolicy and ModelPolicy always return legal actions and report honestly."""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import BEMA, EMA, GPT, ModelPolicy, RandomPolicy, preset
from agents.checkpoint import load, model_from_checkpoint
from othello_env import generate_games, legal_move_masks
from othello_env.opponents import action_mask
from othello_env.tokens import SQUARE_TO_TOKEN, TOKEN_TO_SQUARE

OPENINGS = [19, 26, 37, 44]


def othello_infos(n_games=6, seed=3):
    """(moves, info) for every decision point of some random games, with 65-action masks."""
    games = generate_games(n_games, seed=seed)
    masks = legal_move_masks(games)  # (n, 60, 64)
    out = []
    start = np.zeros(65, dtype=np.int8)
    start[OPENINGS] = 1
    out.append({"moves": [], "action_mask": start})
    for g, m in zip(games, masks):
        n = int((g >= 0).sum())
        for p in range(1, n):  # after moves 0..p-1; the game is not over yet
            mask = np.zeros(65, dtype=np.int8)
            mask[:64] = m[p - 1]
            out.append({"moves": g[:p].tolist(), "action_mask": mask})
    return out


def sharp_tiny(seed=0, **kw):
    """An untrained tiny model with large weights: confident, and often illegal, first choices."""
    torch.manual_seed(seed)
    model = GPT(preset("tiny", dropout=0.0, **kw))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20.0)
    return model.eval()


def model_scores(model, moves):
    tokens = torch.as_tensor(SQUARE_TO_TOKEN[moves][-model.config.block_size :])[None]
    with torch.no_grad():
        return model(tokens)[0, -1]  # (61,)


# --------------------------------------------------------------------------------------------
# RandomPolicy


def test_random_policy_uniform_over_legal_and_seeded():
    mask = np.zeros(65, dtype=np.int8)
    mask[[3, 17, 40]] = 1
    pol = RandomPolicy(seed=1)
    draws = [pol({}, {"action_mask": mask}) for _ in range(3000)]
    assert set(draws) == {3, 17, 40} and all(type(a) is int for a in draws)
    counts = np.bincount(draws, minlength=65)[[3, 17, 40]]
    assert np.all(np.abs(counts - 1000) < 120)  # ~5 sigma
    again = RandomPolicy(seed=1)
    assert [again.act({}, {"action_mask": mask}) for _ in range(50)] == draws[:50]
    # PettingZoo: the mask is in the observation dict
    obs = {"observation": np.zeros((8, 8, 2)), "action_mask": mask}
    assert RandomPolicy(seed=2)(obs, {}) in (3, 17, 40)


def test_random_policy_errors():
    with pytest.raises(ValueError, match="all zero"):
        RandomPolicy(0)({}, {"action_mask": np.zeros(65, dtype=np.int8)})
    with pytest.raises(ValueError, match="no action mask"):
        RandomPolicy(0)(np.zeros(3), {})
    with pytest.raises(ValueError, match="1-D"):
        action_mask({}, {"action_mask": np.ones((2, 2))})


# --------------------------------------------------------------------------------------------
# ModelPolicy on synthetic decisions built from the engine


def test_model_policy_always_legal_and_counts_first_choices():
    model = sharp_tiny()
    infos = othello_infos()
    pol = ModelPolicy(model, greedy=True)
    expected_decisions = expected_illegal = 0
    for info in infos:
        action = pol(None, info)
        assert type(action) is int and info["action_mask"][action] == 1
        legal = np.flatnonzero(info["action_mask"])
        if not info["moves"]:
            assert action in OPENINGS and pol.last_choice_legal is None
            continue
        scores = model_scores(model, info["moves"])
        first = int(TOKEN_TO_SQUARE[1 + int(torch.argmax(scores[1:]))])  # unmasked, PAD excluded
        assert pol.last_choice_legal == bool(info["action_mask"][first])
        expected_decisions += 1
        expected_illegal += int(not info["action_mask"][first])
        # greedy = the best-scoring legal square
        best = max(legal, key=lambda s: scores[SQUARE_TO_TOKEN[s]].item())
        assert action == best
    assert pol.n_decisions == expected_decisions
    assert pol.n_illegal_choices == expected_illegal
    assert 0 < expected_illegal < expected_decisions  # the test exercised both cases
    pol.reset_stats()
    assert (pol.n_decisions, pol.n_illegal_choices, pol.last_choice_legal) == (0, 0, None)


def test_model_policy_sampling_is_legal_and_seeded():
    model = sharp_tiny(1)
    infos = othello_infos(3, seed=5)
    a = ModelPolicy(model, greedy=False, seed=7, temperature=5.0)
    b = ModelPolicy(model, greedy=False, seed=7, temperature=5.0)
    c = ModelPolicy(model, greedy=False, seed=8, temperature=5.0)
    ra = [a(None, i) for i in infos]
    assert all(i["action_mask"][x] == 1 for i, x in zip(infos, ra))
    assert ra == [b(None, i) for i in infos]
    assert ra != [c(None, i) for i in infos]


def test_model_policy_sampling_follows_the_masked_softmax():
    # logits fixed by hand: the head reads a constant bias via a zeroed body
    model = GPT(preset("tiny", dropout=0.0, n_layer=1))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.ln_f.bias.fill_(1.0)  # final features all 1 -> logits = row sums of lm_head
        model.lm_head.weight[SQUARE_TO_TOKEN[19]] = 0.0
        model.lm_head.weight[SQUARE_TO_TOKEN[26]] = np.log(3.0) / 64
        model.lm_head.weight[SQUARE_TO_TOKEN[0]] = 10.0  # the unmasked favourite, illegal
    info = {"moves": [37], "action_mask": np.zeros(65, dtype=np.int8)}
    info["action_mask"][[19, 26]] = 1
    pol = ModelPolicy(model, greedy=False, seed=0)
    draws = [pol(None, info) for _ in range(2000)]
    assert set(draws) == {19, 26}
    assert abs(np.mean(np.array(draws) == 26) - 0.75) < 0.05  # softmax over {0, log 3}
    assert pol.last_choice_legal is False and pol.n_illegal_choices == 2000
    assert ModelPolicy(model)(None, info) == 26


def test_forced_pass_skips_the_model():
    model = sharp_tiny()
    pol = ModelPolicy(model)
    pol.model.forward = None  # calling the model would fail
    mask = np.zeros(65, dtype=np.int8)
    mask[64] = 1
    assert pol(None, {"moves": [19, 18], "action_mask": mask}) == 64
    assert pol.n_decisions == 0 and pol.last_choice_legal is None


def test_history_longer_than_the_block_is_truncated():
    model = sharp_tiny(2, block_size=8)
    info = othello_infos(1, seed=11)[30]
    assert (np.asarray(info["moves"]) >= 0).sum() > 8
    pol = ModelPolicy(model)
    action = pol(None, info)
    scores = model_scores(model, info["moves"])  # uses the last 8 tokens
    legal = np.flatnonzero(info["action_mask"])
    assert action == max(legal, key=lambda s: scores[SQUARE_TO_TOKEN[s]].item())


def test_accepts_wrapped_models_and_averages_without_moving_them():
    model = sharp_tiny(3)
    model.train()
    info = othello_infos(1)[5]
    expected = ModelPolicy(model)(None, info)
    assert model.training  # the caller's mode is restored
    assert ModelPolicy(torch.compile(model))(None, info) == expected
    ema = EMA(model)
    assert ModelPolicy(ema)(None, info) == expected
    assert ModelPolicy(BEMA(model))(None, info) == expected
    with pytest.raises(ValueError, match="GPT"):
        ModelPolicy(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError):
        ModelPolicy(42)


def test_model_policy_bad_arguments():
    model = sharp_tiny()
    for kw in (dict(weights="swa"), dict(task="chess"), dict(temperature=0.0)):
        with pytest.raises(ValueError):
            ModelPolicy(model, **kw)
    pol = ModelPolicy(model)
    with pytest.raises(ValueError, match="65"):
        pol(None, {"moves": [19], "action_mask": np.ones(64, dtype=np.int8)})
    mask = np.zeros(65, dtype=np.int8)
    mask[[18, 20]] = 1
    with pytest.raises(ValueError, match="moves"):
        pol(None, {"action_mask": mask})
    with pytest.raises(ValueError, match="centre"):
        pol(None, {"moves": [27], "action_mask": mask})
    with pytest.raises(ValueError, match="vocab_size 61"):
        ModelPolicy(GPT(preset("setcomp-1l")), task="othello")


# --------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(path, model, env="othello", ema=None, bema=None, **config):
    torch.save(
        {
            "format": "lgagent-checkpoint",
            "version": 1,
            "step": 3,
            "config": {"env": env, **config},
            "model_config": dataclasses.asdict(model.config),
            "model": model.state_dict(),
            "optimizer": {},
            "scheduler": {},
            "ema": ema.state_dict() if ema is not None else None,
            "bema": bema.state_dict() if bema is not None else None,
            "rng": {},
            "data": {},
        },
        path,
    )


def test_checkpoint_weights_are_selected_and_missing_ones_rejected(tmp_path):
    model = sharp_tiny(4)
    ema = EMA(model, decay=0.5)
    ema.update(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    ema.update(model)
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model, ema=ema)
    raw = model_from_checkpoint(path, "raw")
    assert load(path)["config"]["env"] == "othello"
    assert not raw.training
    for a, b in zip(raw.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    averaged = model_from_checkpoint(str(path), "ema")
    for a, b in zip(averaged.state_dict().values(), ema.module.state_dict().values()):
        assert torch.equal(a, b)
    infos = othello_infos(2)[1:40]
    from_ckpt = ModelPolicy(path, weights="ema")
    from_module = ModelPolicy(ema.module)
    assert [from_ckpt(None, i) for i in infos] == [from_module(None, i) for i in infos]
    with pytest.raises(ValueError, match="no BEMA weights"):
        ModelPolicy(path, weights="bema")
    with pytest.raises(ValueError, match="trained on 'othello'"):
        ModelPolicy(path, weights="raw", task="setcomp")
    with pytest.raises(ValueError, match="no checkpoint at"):
        ModelPolicy(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        ModelPolicy(tmp_path / "junk.pt")
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an lgagent checkpoint"):
        ModelPolicy(tmp_path / "other.pt", weights="raw")


def test_setcomp_checkpoint_plays_the_set_complement_env(tmp_path):
    v = 9
    torch.manual_seed(5)
    model = GPT(preset("setcomp-1l", vocab_size=v + 1, block_size=v - 1))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(30.0)
    bema = BEMA(model)
    bema.update(model)
    path = tmp_path / "sc.pt"
    save_checkpoint(path, model, env="setcomp", bema=bema, vocab_size=v)
    pol = ModelPolicy(path, weights="bema", greedy=False, seed=0)
    assert pol.task == "setcomp" and pol.n_actions == v
    env = gym.make("setcomp_env:SetComplement-v0", vocab_size=v, start_length=2)
    for ep in range(5):
        obs, info = env.reset(seed=ep)
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(pol(obs, info))
            assert reward == 1
            done = terminated or truncated
        assert info["success"]
    assert pol.n_decisions == 5 * (v - 2)
    assert 0 < pol.n_illegal_choices < pol.n_decisions
    # empty start: the first token is random (the model never saw an empty prefix)
    env0 = gym.make("setcomp_env:SetComplement-v0", vocab_size=v, start_length=0)
    obs, info = env0.reset(seed=0)
    pol.reset_stats()
    assert 0 <= pol(obs, info) < v and pol.n_decisions == 0
    with pytest.raises(ValueError, match=r"0\.\.8"):
        pol(obs, {"moves": [9], "action_mask": np.ones(v, dtype=np.int8)})


# --------------------------------------------------------------------------------------------
# Full Othello-v0 episodes


def play(env, pol, seed):
    obs, info = env.reset(seed=seed)
    done, reward = False, 0
    while not done:
        obs, reward, terminated, truncated, info = env.step(pol(obs, info))
        assert not info["illegal_action"]
        done = terminated or truncated
    return reward, info


def test_model_policy_plays_full_othello_games_as_player_and_opponent():
    model = sharp_tiny(6)
    player = ModelPolicy(model, greedy=True)
    for colour in ("black", "white"):
        env = gym.make("othello_env:Othello-v0", agent_color=colour, illegal_action="raise")
        for seed in range(2):
            reward, info = play(env, player, seed)
            assert reward in (-1, 0, 1) and (np.asarray(info["moves"]) >= 0).sum() >= 9
    assert player.n_decisions > 50
    # as the opponent (the env raises on an illegal opponent move), against a random agent
    opponent = ModelPolicy(model, greedy=False, seed=1)
    env = gym.make("othello_env:Othello-v0", opponent=opponent, illegal_action="raise")
    rand = RandomPolicy(seed=0)
    for seed in range(2):
        play(env, rand, seed)
    assert opponent.n_decisions > 30
    # model against model
    env = gym.make(
        "othello_env:Othello-v0",
        agent_color="white",
        opponent=ModelPolicy(model),
        illegal_action="raise",
    )
    play(env, ModelPolicy(sharp_tiny(7), greedy=False, seed=3), 0)


def play_aec(aec, policies):
    """One PettingZoo game; returns the agents' cumulative rewards."""
    aec.reset(seed=0)
    totals = dict.fromkeys(aec.possible_agents, 0.0)
    for agent in aec.agent_iter():
        obs, reward, terminated, truncated, info = aec.last()
        totals[agent] += reward
        aec.step(None if terminated or truncated else policies[agent](obs, info))
    return totals


def test_model_policy_as_a_pettingzoo_player():
    from othello_env.pettingzoo import env, raw_env

    model_pol = ModelPolicy(sharp_tiny(8))
    # raw_env raises ValueError on an illegal move
    for policies in (
        {"player_0": model_pol, "player_1": RandomPolicy(1)},
        {"player_0": RandomPolicy(2), "player_1": model_pol},
    ):
        totals = play_aec(raw_env(), policies)
        assert sorted(totals.values()) in ([-1.0, 1.0], [0.0, 0.0])
    # the classic wrappers end the game with -1 to an illegal mover only: the sum would be -1
    totals = play_aec(
        env(), {"player_0": model_pol, "player_1": ModelPolicy(sharp_tiny(9), greedy=False, seed=4)}
    )
    assert sum(totals.values()) == 0
    assert model_pol.n_decisions > 40


def test_checkpoint_whose_weights_do_not_fit_its_config_is_a_value_error(tmp_path):
    model = sharp_tiny(5)
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model)
    ckpt = torch.load(path, weights_only=True)
    assert torch.equal(model_from_checkpoint(ckpt, "raw").wte.weight, model.wte.weight)
    wider = {**ckpt, "model_config": {**ckpt["model_config"], "n_embd": 2 * model.config.n_embd}}
    with pytest.raises(ValueError, match="do not fit its model config"):
        model_from_checkpoint(wider, "raw")
    torch.save(wider, path)
    with pytest.raises(ValueError, match="do not fit its model config"):
        ModelPolicy(path, weights="raw")
    missing = {**ckpt, "model": {k: v for k, v in ckpt["model"].items() if k != "wte.weight"}}
    with pytest.raises(ValueError, match="do not fit"):
        model_from_checkpoint(missing, "raw")
    with pytest.raises(ValueError, match="model_config is invalid"):
        model_from_checkpoint({**ckpt, "model_config": {"n_layers": 2}}, "raw")
    with pytest.raises(ValueError, match="no EMA weights"):
        model_from_checkpoint(ckpt, "ema")
    with pytest.raises(ValueError, match="not an lgagent checkpoint"):
        model_from_checkpoint({"hello": 1})
