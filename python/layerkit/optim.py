"""Optimizers with the update equations of ``torch.optim.SGD`` and ``torch.optim.Adam``.

An optimizer updates parameters in place, one compiled kernel call per parameter.
``step(params)`` takes ``[(value, grad), ...]`` (the zero-copy views from ``Layer.parameters()``, or
any C-contiguous, writable float32 or float64 arrays) in the same order at every call; its state
(momentum buffers, moment estimates) is created at the first step, one entry per parameter.
"""

from __future__ import annotations

import math

import numpy as np

from . import _core

__all__ = ["SGD", "Adam", "Optimizer"]


def _check(name, value, low, high=math.inf, *, closed_low=True):
    value = float(value)
    ok = (low <= value if closed_low else low < value) and value < high
    if not ok or math.isnan(value):
        bound = "[" if closed_low else "("
        raise ValueError(f"{name} must be in {bound}{low}, {high}), got {value}")
    return value


class Optimizer:
    """Base class: keeps per-parameter state and applies ``_update`` to each parameter."""

    def __init__(self):
        self.state = None  # one dict per parameter, made at the first step

    def step(self, params):
        if self.state is None:
            self.state = [{} for _ in params]
        elif len(self.state) != len(params):
            raise ValueError(
                f"{type(self).__name__}.step: got {len(params)} parameters, but this optimizer "
                f"holds state for {len(self.state)}; use a new optimizer for another model"
            )
        for (value, grad), state in zip(params, self.state):
            self._update(value, grad, state)

    def _update(self, value, grad, state):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    Per parameter ``p`` with gradient ``g`` (as in ``torch.optim.SGD`` with zero dampening)::

        g = g + weight_decay * p
        b = g                      (first step)      b = momentum * b + g   (later steps)
        g = g + momentum * b       (nesterov)        g = b                  (otherwise)
        p = p - lr * g
    """

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__()
        self.lr = _check("lr", lr, 0.0)
        self.momentum = _check("momentum", momentum, 0.0)
        self.nesterov = bool(nesterov)
        self.weight_decay = _check("weight_decay", weight_decay, 0.0)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs a positive momentum")

    def _update(self, p, g, state):
        first = "momentum_buffer" not in state
        if self.momentum and first:
            state["momentum_buffer"] = np.empty_like(p)  # filled with g by the first step
        # Without momentum the kernel never touches the buffer; p stands in for it.
        buf = state.get("momentum_buffer", p)
        _core.sgd_step(p, g, buf, self.lr, self.momentum, self.nesterov, self.weight_decay, first)

    def get_config(self):
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }


class Adam(Optimizer):
    """Adam (``torch.optim.Adam``, without amsgrad), weight decay added to the gradient::

    g = g + weight_decay * p
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g**2
    p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    """

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__()
        self.lr = _check("lr", lr, 0.0)
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair of floats, got {betas!r}") from None
        self.betas = (_check("betas[0]", beta1, 0.0, 1.0), _check("betas[1]", beta2, 0.0, 1.0))
        self.eps = _check("eps", eps, 0.0)
        self.weight_decay = _check("weight_decay", weight_decay, 0.0)

    def _update(self, p, g, state):
        beta1, beta2 = self.betas
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        step_size = self.lr / (1 - beta1**t)
        bias2_sqrt = math.sqrt(1 - beta2**t)
        _core.adam_step(
            p, g, state["exp_avg"], state["exp_avg_sq"],
            step_size, beta1, beta2, self.eps, self.weight_decay, bias2_sqrt,
        )  # fmt: skip

    def get_config(self):
        return {
            "lr": self.lr,
            "betas": list(self.betas),
            "eps": self.eps,
            "weight_decay": self.weight_decay,
        }
