"""Losses. Each returns ``(value, grad)``: the mean loss over the batch and its gradient with
respect to the model's output (for cross-entropy: with respect to the logits). Both are computed
in one pass by the compiled kernels.

Targets come as integer class labels of shape (N,) or as arrays shaped like the output
(one-hot or probability rows for cross-entropy).
"""

from __future__ import annotations

import numpy as np

from . import _core

__all__ = ["cross_entropy", "mse"]


def _float_2d(a, name):
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    dtype = a.dtype if a.dtype in (np.float32, np.float64) else np.float64
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, K) with N >= 1, got {a.shape}")
    return np.ascontiguousarray(a, dtype=dtype)


def _labels_or_like(target, like, name):
    t = np.asarray(target)
    if t.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if t.ndim == 1 and len(t) == len(like):
        if t.dtype.kind == "f" and not np.all(np.mod(t, 1) == 0):
            raise ValueError(f"{name}: class labels must be whole numbers")
        return np.ascontiguousarray(t, dtype=np.int64)
    if t.shape != like.shape:
        raise ValueError(f"{name} must have shape {like.shape[:1]} or {like.shape}, got {t.shape}")
    return np.ascontiguousarray(t, dtype=like.dtype)


def cross_entropy(logits, target):
    """Mean cross-entropy of softmax(logits) against ``target``.

    ``E = -1/N * sum_n sum_k t[n, k] * log softmax(z)[n, k]`` and ``dE/dz = (softmax(z) - t) / N``:
    the stable, fused gradient through the softmax (log-softmax is computed as
    ``z - max z - log(sum(exp(z - max z)))``, so no logit overflows). A target of 0 contributes
    nothing, even where the probability underflows to 0.
    """
    z = _float_2d(logits, "logits")
    t = _labels_or_like(target, z, "target")
    grad = np.empty_like(z)
    total, _ = _core.softmax_cross_entropy(z, t, grad)
    return total / len(z), grad


def mse(output, target):
    """``E = 1/2 * sum_k (y_k - t_k)^2`` per sample, averaged over the batch; ``dE/dy = (y - t) / N``.

    Integer labels (N,) are one-hot encoded to the output's width.
    """
    y = _float_2d(output, "output")
    t = _labels_or_like(target, y, "target")
    if t.ndim == 1:
        if t.min() < 0 or t.max() >= y.shape[1]:
            raise ValueError(f"target: class labels must lie in [0, {y.shape[1]})")
        t = np.eye(y.shape[1], dtype=y.dtype)[t]
    grad = np.empty_like(y)
    total = _core.mse(y, t, grad)
    return total / len(y), grad
