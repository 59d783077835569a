"""Weight averaging: EMA and bias-corrected EMA (BEMA, Block & Zhang 2025, arXiv 2508.00180).

Usage, after every optimizer step::

    ema = EMA(model, decay=0.999)
    ...
    optimizer.step()
    ema.update(model)
    evaluate(ema.module)           # an eval-mode copy of the architecture, averaged weights

Both keep their averages in float32 whatever the training dtype, live on the device of
the model they were built from, and average the underlying module of a torch.compile'd
(``model._orig_mod``) or DDP / DataParallel-wrapped (``model.module``) model. Buffers
are not averaged: the latest buffers are copied. ``state_dict()`` holds only tensors
and plain Python values, so checkpoints load with ``torch.load(weights_only=True)``;
``state_dict()["module"]`` is a plain model state dict of the averaged weights.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn


def unwrap(model: nn.Module) -> nn.Module:
    """The module being trained, under any torch.compile / DDP / DataParallel wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None)  # torch.compile's OptimizedModule
        if isinstance(inner, nn.Module):
            model = inner
        elif isinstance(model, (nn.parallel.DistributedDataParallel, nn.parallel.DataParallel)):
            model = model.module
        else:
            return model


class _Averager:
    """Shared machinery: the float32 eval copy, matching parameters, buffers."""

    kind = ""

    def __init__(self, model: nn.Module):
        if not isinstance(model, nn.Module):
            raise ValueError(
                f"{type(self).__name__} needs an nn.Module, got {type(model).__name__}"
            )
        src = unwrap(model)
        module = copy.deepcopy(src).float().eval()
        for p in module.parameters():
            p.requires_grad_(False)
            p.grad = None
        self.module = module
        self._names = [name for name, _ in module.named_parameters()]
        self.n_updates = 0  # update() calls so far (one per optimizer step)

    def _sources(self, model: nn.Module) -> list[torch.Tensor]:
        """The model's parameters as float32 tensors on the average's device, in our order."""
        src = list(unwrap(model).named_parameters())
        if [n for n, _ in src] != self._names:
            raise ValueError(f"{type(self).__name__}.update: model has a different architecture")
        out = []
        for (name, p), a in zip(src, self.module.parameters()):
            if p.shape != a.shape:
                raise ValueError(f"{type(self).__name__}.update: shape mismatch for {name}")
            # float32 on the average's device already (the usual case, autocast included): the
            # parameter itself, read only by the no-grad foreach updates; else a converted copy
            same = p.dtype == torch.float32 and p.device == a.device
            out.append(p if same else p.detach().to(device=a.device, dtype=torch.float32))
        return out

    def _copy_buffers(self, model: nn.Module):
        for a, b in zip(self.module.buffers(), unwrap(model).buffers()):
            a.copy_(b)

    def _params(self) -> list[torch.Tensor]:
        return list(self.module.parameters())

    def _check_state(self, state: dict, hyper: dict):
        if not isinstance(state, dict) or state.get("kind") != self.kind:
            raise ValueError(f"not a {type(self).__name__} state dict")
        for key, value in hyper.items():
            if state.get(key) != value:
                raise ValueError(
                    f"{type(self).__name__} state has {key}={state.get(key)!r}, this one {value!r}"
                )


class EMA(_Averager):
    """Exponential moving average of the weights with a fixed decay.

    The first ``update`` copies the weights; each later one does
    ``ema = decay * ema + (1 - decay) * theta``. Before any update ``.module`` holds the
    weights the model had when the EMA was built. ``decay`` lies in [0, 1], where the step
    is an average: 0 follows the weights, 1 keeps the first update's weights.
    """

    kind = "ema"

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay <= 1:
            raise ValueError(f"EMA decay must be a number in [0, 1], got {decay!r}")
        super().__init__(model)
        self.decay = float(decay)

    @torch.no_grad()
    def update(self, model: nn.Module):
        """Fold the model's current weights into the average (call after each optimizer step)."""
        src = self._sources(model)
        avg = self._params()
        if self.n_updates == 0:
            torch._foreach_copy_(avg, src)
        else:
            torch._foreach_lerp_(avg, src, 1.0 - self.decay)  # decay * ema + (1 - decay) * theta
        self._copy_buffers(model)
        self.n_updates += 1

    def state_dict(self) -> dict:
        return {
            "kind": self.kind,
            "decay": self.decay,
            "n_updates": self.n_updates,
            "module": self.module.state_dict(),
        }

    def load_state_dict(self, state: dict):
        """Restore from ``state_dict()``; raises ValueError if the decay differs."""
        self._check_state(state, {"decay": self.decay})
        self.module.load_state_dict(state["module"])
        self.n_updates = int(state["n_updates"])


CLOCKS = ("since-snapshot", "global", "authors")
THETA0 = ("burn-in", "initial")
ANCHORS = ("tau", "tau+1")
# what a BEMA state saved before these options existed meant (lgagent's first protocol)
LEGACY_BEMA = {"clock": "since-snapshot", "theta0_at": "burn-in", "anchor": "tau+1",
               "min_ema_multiplier": 0.0}


def bema_coefficients(*, clock: str, k: int, step: int, ema_power: float, bias_power: float,
                      lag: float, multiplier: float, burn_in: int,
                      min_ema_multiplier: float = 0.0) -> tuple[float, float]:
    """(beta, alpha) of a BEMA update: the k-th update (k >= 1) after the snapshot, made at
    global step ``step`` (the weights after ``step`` optimizer steps). One function for the
    online :class:`BEMA` and the post-hoc replay (``agents.posthoc``), so both compute the
    same Python floats.

    With kappa = ema_power, eta = bias_power, rho = lag, gamma = multiplier, tau = burn_in,
    floor = min_ema_multiplier:

    * ``since-snapshot`` (lgagent's first protocol): t = k, base = rho + gamma t,
      beta = base^-kappa, alpha = base^-eta;
    * ``global`` (TRL's ``BEMACallback``): t = step, the same base and powers;
    * ``authors`` (the BEMA authors' offline code, abblock/bema ``core_offline.py``):
      s = max(step - tau + rho, 1), beta = (1 + gamma s)^-kappa, alpha = (1 + s)^-eta.

    Then beta = max(beta, floor) (TRL's and the authors' ``min_ema_multiplier``).
    bias_power = inf gives alpha = 0.
    """
    if clock == "authors":
        s = max(step - burn_in + lag, 1)
        b_base, a_base = 1 + multiplier * s, 1 + s
    else:
        t = k if clock == "since-snapshot" else step
        b_base = a_base = lag + multiplier * t
    beta = max(b_base**-ema_power, min_ema_multiplier)
    alpha = 0.0 if math.isinf(bias_power) else a_base**-bias_power
    return beta, alpha


class BEMA(_Averager):
    """Bias-corrected EMA: ``.module`` = EMA + alpha (theta_t - theta_0).

    Counting: the BEMA is built from the weights at step 0 (the initial weights) and
    ``update`` is called once per optimizer step; call n (n = 1, 2, ...) sees the weights
    after n steps, theta_n. The snapshot step is a = tau (``anchor="tau"``, TRL's and the
    authors' choice) or a = tau + 1 (``anchor="tau+1"``, lgagent's first protocol, kept so
    that runs saved with it resume unchanged):

    * n <= a (burn-in and the snapshot): the EMA and ``.module`` track the weights, and so
      does theta_0 unless ``theta0="initial"`` (theta_0 = the weights at step 0, TRL's
      burn-in-0 case). At n = a they hold theta_a; with a = 0 that is the construction.
    * n > a: only when (n - a) is a multiple of ``update_every`` (the cadence phi) is this
      an update, the k-th one after the snapshot (k = 1, 2, ...), with (beta, alpha) from
      :func:`bema_coefficients` (``clock``: since-snapshot t = k, global t = n, or the
      authors' s = max(n - tau + rho, 1); floor ``min_ema_multiplier`` on beta):
      EMA <- (1 - beta) EMA + beta theta_n, ``.module`` <- EMA + alpha (theta_n - theta_0).
      Off-cadence calls only count; ``.module`` keeps the last update's value.

    So TRL's BEMACallback defaults are ``update_every=400, clock="global"`` (burn_in 0,
    anchor tau: theta_0 = the initial weights) and the authors' offline defaults
    ``update_every=400, clock="authors", min_ema_multiplier=1e-4``; lgagent's first
    protocol is ``anchor="tau+1"`` with the since-snapshot clock, every step.

    Ranges: ema_power, bias_power >= 0; lag, multiplier >= 0 with lag + multiplier >= 1,
    so that the base is >= 1 at every t >= 1 and beta_t, alpha_t lie in (0, 1]: lag = 0,
    multiplier = 1, ema_power = 1 is the exact running mean; multiplier = 0 a fixed step;
    min_ema_multiplier in [0, 1].
    bias_power = inf gives alpha = 0: a plain EMA with a polynomially shrinking step.
    Buffers are copied at every burn-in call, the snapshot and every update.
    """

    kind = "bema"

    def __init__(
        self,
        model: nn.Module,
        ema_power: float = 0.5,
        bias_power: float = 0.2,
        lag: float = 10.0,
        multiplier: float = 1.0,
        burn_in: int = 0,
        update_every: int = 1,
        clock: str = "since-snapshot",
        theta0: str = "burn-in",
        anchor: str = "tau",
        min_ema_multiplier: float = 0.0,
    ):
        for name, value in (("ema_power", ema_power), ("bias_power", bias_power)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"BEMA {name} must be a number >= 0, got {value!r}")
        for name, value in (("lag", lag), ("multiplier", multiplier)):
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not 0 <= value < math.inf):
                raise ValueError(f"BEMA {name} must be a finite number >= 0, got {value!r}")
        # the base of the powers grows from lag + multiplier (t = 1): at least 1 keeps every
        # beta_t and alpha_t in (0, 1], so the EMA step is an average, never an extrapolation
        if not lag + multiplier >= 1:
            raise ValueError(f"BEMA needs lag + multiplier >= 1 (beta_t, alpha_t <= 1), got "
                             f"{lag} + {multiplier}")
        if isinstance(burn_in, bool) or not isinstance(burn_in, int) or burn_in < 0:
            raise ValueError(f"BEMA burn_in must be an integer >= 0, got {burn_in!r}")
        if isinstance(update_every, bool) or not isinstance(update_every, int) or update_every < 1:
            raise ValueError(f"BEMA update_every must be an integer >= 1, got {update_every!r}")
        for name, value, choices in (("clock", clock, CLOCKS), ("theta0", theta0, THETA0),
                                     ("anchor", anchor, ANCHORS)):
            if value not in choices:
                raise ValueError(f"BEMA {name} must be one of {', '.join(choices)}, "
                                 f"got {value!r}")
        if (isinstance(min_ema_multiplier, bool) or not isinstance(min_ema_multiplier, (int, float))
                or not 0 <= min_ema_multiplier <= 1):
            raise ValueError(f"BEMA min_ema_multiplier must be a number in [0, 1], "
                             f"got {min_ema_multiplier!r}")
        super().__init__(model)
        self.ema_power = float(ema_power)
        self.bias_power = float(bias_power)
        self.lag = float(lag)
        self.multiplier = float(multiplier)
        self.burn_in = burn_in
        self.update_every = update_every
        self.clock, self.theta0_at, self.anchor = clock, theta0, anchor
        self.min_ema_multiplier = float(min_ema_multiplier)
        self.anchor_step = burn_in + (anchor == "tau+1")  # a: the snapshot's step
        self.k = 0  # cadence updates since the snapshot (t of the last update)
        # float32 copies of the weights at step 0; the snapshot overwrites them
        self.ema = [p.detach().clone() for p in self._params()]
        self.theta0 = [p.detach().clone() for p in self._params()]

    def coefficients(self, t: int, step: int | None = None) -> tuple[float, float]:
        """(beta_t, alpha_t) of the t-th update after the snapshot (t >= 1), made at global
        step ``step`` (default: where this BEMA's cadence puts it)."""
        if step is None:
            step = self.anchor_step + t * self.update_every
        return bema_coefficients(
            clock=self.clock, k=t, step=step, ema_power=self.ema_power,
            bias_power=self.bias_power, lag=self.lag, multiplier=self.multiplier,
            burn_in=self.burn_in, min_ema_multiplier=self.min_ema_multiplier)

    @torch.no_grad()
    def update(self, model: nn.Module):
        """Count one optimizer step and, on the cadence, update the average (see class doc)."""
        src = self._sources(model)
        self.n_updates += 1
        since = self.n_updates - self.anchor_step  # calls since the snapshot; <= 0: burn-in
        if since <= 0:  # burn-in or the snapshot itself
            tracked = [self.ema, self._params()]
            if self.theta0_at == "burn-in":
                tracked.append(self.theta0)
            for dst in tracked:
                torch._foreach_copy_(dst, src)
            self.k = 0
        elif since % self.update_every == 0:
            self.k += 1
            beta, alpha = self.coefficients(self.k, self.n_updates)
            torch._foreach_lerp_(self.ema, src, beta)  # (1 - beta) EMA + beta theta
            out = self._params()
            torch._foreach_copy_(out, self.ema)
            torch._foreach_add_(out, src, alpha=alpha)
            torch._foreach_add_(out, self.theta0, alpha=-alpha)
        else:
            return
        self._copy_buffers(model)

    def _hyper(self) -> dict:
        return {
            "ema_power": self.ema_power,
            "bias_power": self.bias_power,
            "lag": self.lag,
            "multiplier": self.multiplier,
            "burn_in": self.burn_in,
            "update_every": self.update_every,
            "clock": self.clock,
            "theta0_at": self.theta0_at,
            "anchor": self.anchor,
            "min_ema_multiplier": self.min_ema_multiplier,
        }

    def state_dict(self) -> dict:
        return {
            "kind": self.kind,
            **self._hyper(),
            "n_updates": self.n_updates,
            "k": self.k,
            "ema": dict(zip(self._names, self.ema)),
            "theta0": dict(zip(self._names, self.theta0)),
            "module": self.module.state_dict(),
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict):
        """Restore from ``state_dict()``; raises ValueError if a hyperparameter differs. A
        state saved before ``clock``, ``theta0_at``, ``anchor`` and ``min_ema_multiplier``
        existed holds lgagent's first protocol (:data:`LEGACY_BEMA`)."""
        if isinstance(state, dict):
            state = {**LEGACY_BEMA, **state}
        self._check_state(state, self._hyper())
        for key, dst in (("ema", self.ema), ("theta0", self.theta0)):
            if sorted(state[key]) != sorted(self._names):
                raise ValueError(f"BEMA state {key!r} is for a different architecture")
            for name, t in zip(self._names, dst):
                t.copy_(state[key][name])
        self.module.load_state_dict(state["module"])
        self.n_updates = int(state["n_updates"])
        self.k = int(state["k"])
