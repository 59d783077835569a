"""agents.averaging: EMA and BEMA against hand-computed sequences, state dicts, wrappers."""

import io
import math
import socket

import pytest
import torch
import torch.nn as nn

from agents import BEMA, EMA, GPT, GPTConfig, unwrap


class One(nn.Module):
    """A 1-parameter model with a buffer (buffers are copied, not averaged)."""

    def __init__(self, value=0.0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([value]))
        self.register_buffer("seen", torch.tensor(0))


LEGACY = dict(anchor="tau+1")  # lgagent's first protocol: the snapshot one call after tau


def drive(avg, thetas, model=None):
    """Set the weight to each theta in turn, update, record the averaged weight."""
    model = model or One()
    out = []
    for i, th in enumerate(thetas):
        with torch.no_grad():
            model.w.fill_(th)
            model.seen.fill_(i + 1)
        avg.update(model)
        out.append(avg.module.w.item())
    return out


def test_ema_hand_computed():
    model = One(7.0)
    ema = EMA(model, decay=0.5)
    assert ema.module.w.item() == 7.0  # before any update: the weights at construction
    # first update copies; then ema = 0.5 ema + 0.5 theta
    assert drive(ema, [1.0, 2.0, 4.0, 3.0, 5.0], model) == pytest.approx(
        [1.0, 1.5, 2.75, 2.875, 3.9375]
    )
    assert ema.module.seen.item() == 5  # buffer copied
    assert ema.n_updates == 5
    ema9 = EMA(One(), decay=0.9)
    assert drive(ema9, [10.0, 0.0, 0.0]) == pytest.approx([10.0, 9.0, 8.1])


def test_bema_hand_computed_defaults():
    # ema_power 0.5, bias_power 0.2, lag 10, multiplier 1, burn_in 0, every 1; the snapshot at
    # call tau + 1 (lgagent's first protocol, LEGACY)
    bema = BEMA(One(), **LEGACY)
    got = drive(bema, [1.0, 2.0])
    # update 1: snapshot theta0 = EMA = 1. update 2 (t = 1): beta = 11^-0.5, alpha = 11^-0.2
    # EMA = (1 - beta) + 2 beta = 1.3015113..., BEMA = EMA + alpha (2 - 1) = 1.9205552...
    assert got == pytest.approx([1.0, 1.9205552652616094], abs=1e-6)
    assert bema.ema[0].item() == pytest.approx(1.3015113445777637, abs=1e-6)
    assert bema.theta0[0].item() == 1.0
    assert bema.coefficients(1) == pytest.approx((11**-0.5, 11**-0.2))


def test_bema_hand_computed_burn_in_and_cadence():
    bema = BEMA(One(), burn_in=1, update_every=2, **LEGACY)
    got = drive(bema, [5.0, 1.0, 2.0, 4.0, 3.0, 6.0])
    # call 1: burn-in, tracks (5). call 2: snapshot theta0 = EMA = 1. call 3: off-cadence.
    # call 4: t = 1: EMA = 1 + 11^-.5 * 3 = 1.9045340; BEMA = EMA + 11^-.2 * 3 = 3.7616658
    # call 5: off-cadence. call 6: t = 2: EMA = 1.9045340 + 12^-.5 (6 - 1.9045340) = 3.0867932,
    #         BEMA = EMA + 12^-.2 * (6 - 1) = 6.1286149
    expected = [5.0, 1.0, 1.0, 3.761665795784827, 3.761665795784827, 6.128614932239837]
    assert got == pytest.approx(expected, abs=1e-5)
    assert bema.k == 2 and bema.n_updates == 6
    assert bema.ema[0].item() == pytest.approx(3.0867932227738084, abs=1e-5)


def bema_reference(thetas, ema_power, bias_power, lag, multiplier, burn_in, update_every):
    """The documented BEMA schedule in plain Python floats."""
    out, k, ema, theta0, module = [], 0, None, None, None
    for n, th in enumerate(thetas, start=1):
        since = n - burn_in - 1
        if since <= 0:
            theta0 = ema = module = th
        elif since % update_every == 0:
            k += 1
            base = lag + multiplier * k
            beta, alpha = base**-ema_power, base**-bias_power
            ema = (1 - beta) * ema + beta * th
            module = ema + alpha * (th - theta0)
        out.append(module)
    return out


@pytest.mark.parametrize(
    "hyper",
    [
        dict(ema_power=0.5, bias_power=0.2, lag=10.0, multiplier=1.0, burn_in=0, update_every=1),
        dict(ema_power=0.7, bias_power=0.4, lag=2.0, multiplier=3.0, burn_in=3, update_every=3),
        dict(ema_power=1.0, bias_power=0.0, lag=0.0, multiplier=1.0, burn_in=0, update_every=1),
    ],
)
def test_bema_matches_plain_python_schedule(hyper):
    thetas = [math.sin(i) * 3 + i * 0.1 for i in range(20)]
    bema = BEMA(One(), **hyper, **LEGACY)
    assert drive(bema, thetas) == pytest.approx(bema_reference(thetas, **hyper), abs=1e-5)


def test_bema_degenerate_settings_reduce_to_tracking_and_plain_ema():
    thetas = [3.0, -1.0, 2.0, 8.0]
    # beta = 1 (ema_power 0) and alpha = 0 (bias_power inf): the module follows the weights
    assert drive(BEMA(One(), ema_power=0.0, bias_power=math.inf), thetas) == pytest.approx(thetas)
    # alpha = 0: an EMA with step (10 + t)^-0.5
    got = drive(BEMA(One(), bias_power=math.inf, **LEGACY), thetas)
    ema, ref = 3.0, [3.0]
    for t, th in enumerate(thetas[1:], start=1):
        beta = (10 + t) ** -0.5
        ema = (1 - beta) * ema + beta * th
        ref.append(ema)
    assert got == pytest.approx(ref, abs=1e-6)


def test_averages_are_float32_eval_frozen_and_independent():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=8)).to(
        torch.bfloat16
    )
    model.train()
    for avg in (EMA(model), BEMA(model, burn_in=1)):  # call 1 copies the weights
        assert all(p.dtype == torch.float32 for p in avg.module.parameters())
        assert not avg.module.training
        assert not any(p.requires_grad for p in avg.module.parameters())
        assert avg.module.wte.weight.data_ptr() != model.wte.weight.data_ptr()
        avg.update(model)
        torch.testing.assert_close(avg.module.wte.weight, model.wte.weight.float())
        with torch.no_grad():
            model.wte.weight.add_(1.0)
        assert not torch.allclose(avg.module.wte.weight, model.wte.weight.float())
    assert model.training and model.wte.weight.dtype == torch.bfloat16


def _step(model, seed):
    """One SGD step on a random batch (a real training update)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 7, (2, 4), generator=g)
    _, loss = model(x, torch.randint(0, 7, (2, 4), generator=g))
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(p.grad, alpha=-0.5)


def _tiny():
    torch.manual_seed(1)
    return GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=8, dropout=0.0))


def _roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize(
    "make",
    [
        lambda m: EMA(m, decay=0.9),
        lambda m: BEMA(m, burn_in=2, update_every=3, lag=5.0),
    ],
    ids=["ema", "bema"],
)
def test_state_dict_round_trip_gives_identical_module_and_updates(make):
    model = _tiny()
    avg = make(model)
    for s in range(7):  # stops mid-cadence for BEMA (7 calls: 2 burn-in, snapshot, 4 since)
        _step(model, s)
        avg.update(model)
    state = _roundtrip(avg.state_dict())
    fresh = make(_tiny())
    fresh.load_state_dict(state)
    for a, b in zip(avg.module.state_dict().values(), fresh.module.state_dict().values()):
        assert torch.equal(a, b)
    for s in range(7, 12):
        _step(model, s)
        avg.update(model)
        fresh.update(model)
        for a, b in zip(avg.module.parameters(), fresh.module.parameters()):
            assert torch.equal(a, b)


def test_load_state_dict_rejects_mismatches():
    model = _tiny()
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=0.5).load_state_dict(EMA(model, decay=0.9).state_dict())
    with pytest.raises(ValueError, match="burn_in"):
        BEMA(model).load_state_dict(BEMA(model, burn_in=5).state_dict())
    with pytest.raises(ValueError, match="not a BEMA"):
        BEMA(model).load_state_dict(EMA(model).state_dict())
    with pytest.raises(ValueError, match="different architecture"):
        EMA(model).update(One())


@pytest.mark.parametrize(
    "bad",
    [
        dict(ema_power=-1.0),
        dict(bias_power=-0.1),
        dict(lag=-1.0),
        dict(lag=0.0, multiplier=0.0),
        dict(lag=0.5, multiplier=0.4),  # base < 1 at t = 1: beta_1 > 1, an extrapolation
        dict(lag=2.0, multiplier=-0.5),
        dict(lag=math.inf),
        dict(lag=math.nan),
        dict(burn_in=-1),
        dict(burn_in=1.5),
        dict(update_every=0),
        dict(update_every=True),
    ],
)
def test_bema_bad_hyperparameters(bad):
    with pytest.raises(ValueError):
        BEMA(One(), **bad)


def test_ema_decay_boundaries_0_and_1_are_averages():
    # the closed range [0, 1] of the formula: 0 follows the weights, 1 keeps the first update's
    assert drive(EMA(One(), decay=0.0), [1.0, 2.0, 4.0]) == [1.0, 2.0, 4.0]
    assert drive(EMA(One(), decay=1.0), [1.0, 2.0, 4.0]) == [1.0, 1.0, 1.0]
    assert drive(EMA(One(), decay=1), [3.0, 5.0]) == [3.0, 3.0]  # an int is a number


def test_bema_lag_boundaries():
    # lag 0 with multiplier 1 and ema_power 1: beta_t = 1/t, the exact running mean
    bema = BEMA(One(), ema_power=1.0, bias_power=math.inf, lag=0.0, multiplier=1.0, **LEGACY)
    assert drive(bema, [9.0, 1.0, 2.0, 3.0]) == pytest.approx([9.0, 1.0, 1.5, 2.0])
    # multiplier 0: a constant step lag ** -ema_power; lag + multiplier = 1 is the smallest base
    assert BEMA(One(), lag=1.0, multiplier=0.0).coefficients(5) == (1.0, 1.0)
    assert BEMA(One(), lag=4.0, multiplier=0.0).coefficients(7) == pytest.approx((0.5, 4**-0.2))
    with pytest.raises(ValueError, match="lag \\+ multiplier >= 1"):
        BEMA(One(), lag=0.999, multiplier=0.0)


def test_ema_bad_arguments():
    for decay in (-0.1, 1.5, 1.0 + 1e-9, math.nan, "0.9", None):
        with pytest.raises(ValueError):
            EMA(One(), decay=decay)
    with pytest.raises(ValueError):
        EMA("model")


def test_compiled_model_is_unwrapped():
    model = _tiny()
    compiled = torch.compile(model)  # not called: no compilation happens
    assert unwrap(compiled) is model
    for avg in (EMA(compiled, decay=0.5), BEMA(compiled, **LEGACY)):
        assert type(avg.module) is GPT
        assert all(not k.startswith("_orig_mod") for k in avg.module.state_dict())
        _step(model, 0)
        avg.update(compiled)
        avg.update(compiled)
        torch.testing.assert_close(avg.module.wte.weight, model.wte.weight)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_model_is_unwrapped():
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1
    )
    try:
        model = _tiny()
        ddp = nn.parallel.DistributedDataParallel(model)
        assert unwrap(ddp) is model
        assert unwrap(torch.compile(ddp)) is model
        ema = EMA(ddp, decay=0.5)
        assert type(ema.module) is GPT
        assert all(not k.startswith("module.") for k in ema.module.state_dict())
        before = model.wte.weight.detach().clone()
        ema.update(ddp)
        _step(model, 1)
        ema.update(ddp)
        torch.testing.assert_close(
            ema.module.wte.weight, 0.5 * before + 0.5 * model.wte.weight.detach()
        )
    finally:
        dist.destroy_process_group()


# -- the reference protocols (TRL's BEMACallback, the BEMA authors' offline code) ---------------

def trl_reference(theta_init, thetas, *, update_freq=400, ema_power=0.5, bias_power=0.2, lag=10,
                  update_after=0, multiplier=1.0, min_ema_multiplier=0.0):
    """TRL's BEMACallback.on_step_end in plain floats: theta_0 = EMA = the initial weights;
    at global step == update_after both snapshot theta_step; at (step - update_after) % freq
    == 0 (step > update_after) an update with t = the global step. The running model holds
    the initial weights until the first update."""
    theta0 = ema = running = theta_init
    out = []
    for step, th in enumerate(thetas, start=1):
        if step == update_after:
            theta0 = ema = th
        elif step > update_after and (step - update_after) % update_freq == 0:
            base = lag + multiplier * step
            beta = max(base**-ema_power, min_ema_multiplier)
            alpha = base**-bias_power
            ema = (1 - beta) * ema + beta * th
            running = ema + alpha * (th - theta0)
        out.append(running)
    return out


def authors_reference(theta_init, thetas, *, update_freq=400, ema_power=0.5, eta_power=0.2,
                      scaling_lag=10, update_after=0, ema_gamma=1.0, min_ema_multiplier=1e-4):
    """The authors' offline BEMA (abblock/bema core_offline.py, update_after 0): theta_0 = EMA =
    the initial weights; every update_freq steps s = max(step - tau + rho, 1),
    beta = max((1 + gamma s)^-kappa, floor), EMA <- (1 - beta) EMA + beta theta,
    out = EMA + (1 + s)^-eta (theta - theta_0)."""
    assert update_after == 0
    theta0 = ema = running = theta_init
    out = []
    for step, th in enumerate(thetas, start=1):
        if step % update_freq == 0:
            s = max(step - update_after + scaling_lag, 1)
            beta = max((1 + ema_gamma * s) ** -ema_power, min_ema_multiplier)
            ema = (1 - beta) * ema + beta * th
            running = ema + (1 + s) ** -eta_power * (th - theta0)
        out.append(running)
    return out


THETAS = [math.sin(i) * 3 + i * 0.1 for i in range(1, 25)]


def test_bema_global_clock_matches_trl_hand_computed():
    # TRL's defaults at cadence 2: updates at steps 2, 4 with t = 2, 4
    bema = BEMA(One(7.0), update_every=2, clock="global")
    got = drive(bema, [1.0, 2.0, 3.0, 5.0], One(7.0))
    b2, a2, b4, a4 = 12**-0.5, 12**-0.2, 14**-0.5, 14**-0.2
    ema2 = (1 - b2) * 7 + b2 * 2
    out2 = ema2 + a2 * (2 - 7)
    ema4 = (1 - b4) * ema2 + b4 * 5
    out4 = ema4 + a4 * (5 - 7)
    assert got == pytest.approx([7.0, out2, out2, out4], abs=1e-5)
    assert got == pytest.approx(trl_reference(7.0, [1.0, 2.0, 3.0, 5.0], update_freq=2), abs=1e-5)


@pytest.mark.parametrize("kw", [dict(update_freq=1), dict(update_freq=3),
                                dict(update_freq=4, update_after=5),
                                dict(update_freq=2, min_ema_multiplier=0.3, lag=2, multiplier=2.0)])
def test_bema_global_clock_matches_trl_formulas(kw):
    ref = trl_reference(0.0, THETAS, **kw)
    bema = BEMA(One(0.0), ema_power=0.5, bias_power=0.2, lag=float(kw.get("lag", 10)),
                multiplier=kw.get("multiplier", 1.0), burn_in=kw.get("update_after", 0),
                update_every=kw["update_freq"], clock="global",
                min_ema_multiplier=kw.get("min_ema_multiplier", 0.0))
    got = drive(bema, THETAS, One(0.0))
    tau = kw.get("update_after", 0)
    # during TRL's burn-in its running model holds the initial weights, lgagent's the current ones;
    # from the first update on they agree
    first = tau + kw["update_freq"]
    assert got[first - 1:] == pytest.approx(ref[first - 1:], abs=1e-5)


@pytest.mark.parametrize("freq", [1, 3, 5])
def test_bema_authors_clock_matches_the_authors_formulas(freq):
    ref = authors_reference(0.5, THETAS, update_freq=freq)
    bema = BEMA(One(0.5), update_every=freq, clock="authors", min_ema_multiplier=1e-4)
    assert drive(bema, THETAS, One(0.5)) == pytest.approx(ref, abs=1e-5)
    # hand-computed first update at step freq: s = freq + 10
    s = freq + 10
    assert bema.coefficients(1) == pytest.approx((max((1 + s) ** -0.5, 1e-4), (1 + s) ** -0.2))


def test_bema_floor_theta0_initial_and_anchor():
    # floor: beta = max((10 + t)^-0.5, 0.5) = 0.5 for every t >= 0
    bema = BEMA(One(0.0), min_ema_multiplier=0.5)
    assert bema.coefficients(3)[0] == 0.5
    # theta0 = initial with burn-in 2 (anchor tau): calls 1, 2 track the EMA (theta_0 stays 4);
    # call 3: t = 1, beta = 11^-.5, EMA = 2 + beta (6 - 2), out = EMA + 11^-.2 (6 - 4)
    bema = BEMA(One(4.0), burn_in=2, theta0="initial")
    got = drive(bema, [1.0, 2.0, 6.0], One(4.0))
    ema = 2 + 11**-0.5 * 4
    assert got == pytest.approx([1.0, 2.0, ema + 11**-0.2 * 2], abs=1e-5)
    assert bema.theta0[0].item() == 4.0
    # anchor tau vs tau + 1 with burn-in 0: tau snapshots the initial weights (no call), so call 1
    # is already an update; tau + 1 snapshots call 1
    assert drive(BEMA(One(0.0)), [1.0], One(0.0))[0] == pytest.approx(
        (1 - 11**-0.5) * 0 + 11**-0.5 + 11**-0.2, abs=1e-6)
    assert drive(BEMA(One(0.0), anchor="tau+1"), [1.0], One(0.0)) == [1.0]


def test_bema_state_saved_before_the_options_loads_as_the_first_protocol():
    model = _tiny()
    old = BEMA(model, burn_in=2, anchor="tau+1")
    for s in range(5):
        _step(model, s)
        old.update(model)
    state = old.state_dict()
    for key in ("clock", "theta0_at", "anchor", "min_ema_multiplier"):  # as older files hold it
        del state[key]
    fresh = BEMA(_tiny(), burn_in=2, anchor="tau+1")
    fresh.load_state_dict(_roundtrip(state))
    assert fresh.n_updates == 5
    with pytest.raises(ValueError, match="anchor"):
        BEMA(_tiny(), burn_in=2).load_state_dict(_roundtrip(state))


@pytest.mark.parametrize("bad", [dict(clock="wall"), dict(theta0="end"), dict(anchor="tau+2"),
                                 dict(min_ema_multiplier=1.5), dict(min_ema_multiplier=-0.1)])
def test_bema_bad_reference_options(bad):
    with pytest.raises(ValueError):
        BEMA(One(), **bad)
