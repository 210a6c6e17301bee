"""Finite-difference checks of analytic gradients."""

from __future__ import annotations

import numpy as np

from .layers import Layer
from .model import Sequential

__all__ = ["gradcheck"]


def _float64_copy(obj):
    """``obj`` itself when all its parameters are float64, else a float64 copy of it."""
    if all(value.dtype == np.float64 for _, value, _ in obj.parameters()):
        return obj
    if isinstance(obj, Sequential):
        return Sequential([_float64_copy(layer) for layer in obj.layers])
    config = dict(obj.get_config())
    config["dtype"] = "float64"
    copy = type(obj).from_config(config)
    for (_, src, _), (_, dst, _) in zip(obj.parameters(), copy.parameters()):
        dst[...] = src
    return copy


def _relative_error(analytic, numeric):
    scale = max(np.max(np.abs(analytic), initial=0.0), np.max(np.abs(numeric), initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(analytic - numeric)) / scale)


def gradcheck(layer_or_model, x, *, eps=1e-6, seed=0):
    """Compares analytic gradients with central finite differences, in float64.

    The scalar checked is ``L = sum(r * f(x))`` for a fixed random ``r``; its gradient with
    respect to the input and to every parameter is computed by ``backward(r)`` and by
    ``(L(v + eps) - L(v - eps)) / (2 * eps)`` one element at a time. A layer or model with float32
    parameters is checked through a float64 copy; the original is left unchanged.

    Parameters
    ----------
    layer_or_model : Layer or Sequential
    x : array
        An input the layer accepts. Keep it away from kinks (ReLU at 0) and small: the cost is
        two forward passes per element of ``x`` and of every parameter.
    eps : float
    seed : int
        Seeds ``r``.

    Returns
    -------
    float
        The worst error over the input and the parameters, each tensor's largest absolute
        difference divided by its largest gradient magnitude.
    """
    if not isinstance(layer_or_model, (Layer, Sequential)):
        raise TypeError(f"gradcheck needs a Layer or a Sequential, got {type(layer_or_model)}")
    f = _float64_copy(layer_or_model)
    x = np.array(x, dtype=np.float64)
    r = np.random.default_rng(seed).standard_normal(np.shape(f.forward(x)))
    analytic = {"input": np.array(f.backward(r), dtype=np.float64)}
    tensors = {"input": x}
    for name, value, grad in f.parameters():
        analytic[name] = np.array(grad, dtype=np.float64)
        tensors[name] = value

    def loss():
        return float(np.sum(r * f.forward(x)))

    worst = 0.0
    for name, v in tensors.items():
        numeric = np.empty(v.shape)
        for idx in np.ndindex(v.shape):
            saved = v[idx]
            v[idx] = saved + eps
            up = loss()
            v[idx] = saved - eps
            down = loss()
            v[idx] = saved
            numeric[idx] = (up - down) / (2 * eps)
        worst = max(worst, _relative_error(analytic[name], numeric))
    return worst
