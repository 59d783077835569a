"""agents.posthoc: schemes replayed from snapshots against hand-computed cases, bitwise against
the online EMA/BEMA with a snapshot at every step, and the error of sparse snapshots."""

import math

import pytest
import torch

from agents import posthoc
from agents.averaging import BEMA, EMA
from tests.agents.test_averaging import _step, _tiny


def run_scalar(schedule, thetas: dict, at):
    """A scheme over 1-element weights ``{step: value}``; ``{step: averaged value}``."""
    load = lambda s: [torch.tensor([thetas[s]], dtype=torch.float32)]  # noqa: E731
    return {s: t[0].item() for s, t in posthoc.average(schedule, load, list(thetas), at)}


def test_ema_uniform_raw_hand_computed():
    th = {0: 8.0, 1: 1.0, 2: 2.0, 3: 4.0}
    # EMA 0.5: theta_1 copied, then halfway: 1, 1.5, 2.75; step 0: the initial weights
    assert run_scalar(posthoc.ema_schedule(0.5), th, [0, 1, 2, 3]) == pytest.approx(
        {0: 8.0, 1: 1.0, 2: 1.5, 3: 2.75})
    # the mean of steps 1..E
    assert run_scalar(posthoc.uniform_schedule(1), th, [0, 1, 2, 3]) == pytest.approx(
        {0: 8.0, 1: 1.0, 2: 1.5, 3: 7 / 3})
    assert run_scalar(None, th, [2]) == {2: 2.0}


def test_sparse_snapshots_interpolate_linearly():
    # snapshots at 0 and 4 only: theta_t = 2 t on the line between them (exact here)
    th = {0: 0.0, 4: 8.0}
    got = run_scalar(posthoc.ema_schedule(0.5), th, [4])
    ema = 2.0
    for t in (2, 3, 4):
        ema = 0.5 * ema + 0.5 * 2 * t
    assert got[4] == pytest.approx(ema)
    assert run_scalar(posthoc.uniform_schedule(2), th, [4])[4] == pytest.approx(6.0)
    # BEMA at cadence 2 (updates at 2, 4), theta_0 = 0: out = EMA + 12^-.2 (8 - 0)
    b2, b4 = 11**-0.5, 12**-0.5
    ema = (1 - b4) * (b2 * 4) + b4 * 8
    got = run_scalar(posthoc.bema_schedule(update_every=2, clock="since-snapshot"), th, [4])
    assert got[4] == pytest.approx(ema + 12**-0.2 * 8, abs=1e-6)


def test_bema_schedule_hand_computed_trl_and_authors():
    th = {0: 1.0, 2: 3.0, 4: 2.0}
    # TRL at cadence 2: updates at steps 2, 4 with t = 2, 4; theta_0 = EMA = theta at step 0
    b2, b4 = 12**-0.5, 14**-0.5
    ema2 = (1 - b2) * 1 + b2 * 3
    ema4 = (1 - b4) * ema2 + b4 * 2
    got = run_scalar(posthoc.bema_schedule(update_every=2, clock="global"), th, [0, 2, 4])
    assert got == pytest.approx({0: 1.0, 2: ema2 + 12**-0.2 * 2, 4: ema4 + 14**-0.2 * 1},
                                abs=1e-6)
    # the authors: s = step + 10; beta = (1 + s)^-.5, alpha = (1 + s)^-.2
    b2, b4 = 13**-0.5, 15**-0.5
    ema2 = (1 - b2) * 1 + b2 * 3
    ema4 = (1 - b4) * ema2 + b4 * 2
    got = run_scalar(posthoc.bema_schedule(update_every=2, clock="authors",
                                           min_ema_multiplier=1e-4), th, [4])
    assert got[4] == pytest.approx(ema4 + 15**-0.2 * 1, abs=1e-6)


def test_outside_the_snapshots_is_one_line():
    with pytest.raises(ValueError, match="needs the weights at step 3"):
        run_scalar(posthoc.uniform_schedule(3), {4: 1.0, 8: 2.0}, [8])
    with pytest.raises(ValueError, match="no snapshot"):
        run_scalar(None, {0: 1.0}, [5])


def trajectory(steps):
    """A real training trajectory of the tiny GPT: ``[state at 0, 1, ..., steps]``."""
    model = _tiny()
    states = [{k: v.detach().clone() for k, v in model.state_dict().items()}]
    for s in range(steps):
        _step(model, s)
        states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    return model, states


def online(make, steps):
    """The online averager ``make(model)`` driven along :func:`trajectory`'s steps."""
    model = _tiny()
    avg = make(model)
    for s in range(steps):
        _step(model, s)
        avg.update(model)
    return avg.module.state_dict()


BEMAS = [dict(), dict(burn_in=3), dict(burn_in=2, update_every=3),
         dict(burn_in=2, update_every=3, anchor="tau+1"),
         dict(update_every=4, clock="global", theta0="initial"),
         dict(burn_in=5, update_every=2, clock="authors", min_ema_multiplier=0.3),
         dict(burn_in=4, theta0="initial", lag=2.0, multiplier=3.0, ema_power=0.7)]


@pytest.mark.parametrize("kind,kw", [("ema", dict(decay=0.9)), ("ema", dict(decay=0.999))]
                         + [("bema", kw) for kw in BEMAS])
def test_replay_at_every_step_equals_the_online_average_bitwise(kind, kw):
    T = 17
    _, states = trajectory(T)
    names = list(states[0])
    load = lambda s: [states[s][n] for n in names]  # noqa: E731
    if kind == "ema":
        ref = online(lambda m: EMA(m, **kw), T)
        schedule = posthoc.ema_schedule(kw["decay"])
    else:
        ref = online(lambda m: BEMA(m, **kw), T)
        schedule = posthoc.bema_schedule(**kw)
    (step, got), = posthoc.average(schedule, load, list(range(T + 1)), [T])
    for n, t in zip(names, got):
        assert torch.equal(t, ref[n]), n


def test_bema_at_its_cadence_needs_snapshots_only_there():
    # phi = 4 and snapshots every 4 steps: every update sits on a snapshot, so still bitwise
    T, kw = 16, dict(update_every=4, clock="global")
    _, states = trajectory(T)
    names = list(states[0])
    ref = online(lambda m: BEMA(m, **kw), T)
    (_, got), = posthoc.average(posthoc.bema_schedule(**kw), lambda s: [states[s][n] for n in names],
                                list(range(0, T + 1, 4)), [T])
    assert all(torch.equal(t, ref[n]) for n, t in zip(names, got))


def rel_error(a, b):
    num = math.sqrt(sum(float(((x - y) ** 2).sum()) for x, y in zip(a, b)))
    return num / math.sqrt(sum(float((y**2).sum()) for y in b))


def test_sparse_snapshots_reconstruct_an_ema_closely():
    # horizon H = 1 / (1 - decay) = 20 steps; snapshots every N: the error grows with N / H.
    # This trajectory (SGD at lr 0.5 on random batches) is far noisier than a real run's
    # (docs/AVERAGING.md measures one): 0.6%, 1.7% and 6.4% for N = 2, 10, 30
    T = 60
    _, states = trajectory(T)
    names = list(states[0])
    load = lambda s: [states[s][n] for n in names]  # noqa: E731
    sched = posthoc.ema_schedule(0.95)
    (_, exact), = posthoc.average(sched, load, list(range(T + 1)), [T])
    errs = {}
    for N in (2, 5, 10, 30):
        (_, got), = posthoc.average(sched, load, list(range(0, T + 1, N)), [T])
        errs[N] = rel_error(got, exact)
    assert errs[2] < errs[10] < errs[30] and errs[2] < 0.01 and errs[10] < 0.03
