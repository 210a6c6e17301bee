"""Losses. Each returns ``(value, grad)``: the mean loss over the batch and its gradient with
respect to the model's output (for cross-entropy: with respect to the logits).

Targets come as integer class labels of shape (N,) or as arrays shaped like the output
(one-hot or probability rows for cross-entropy).
"""

from __future__ import annotations

import numpy as np

__all__ = ["cross_entropy", "log_softmax", "mse"]


def log_softmax(z):
    """Row-wise ``log(softmax(z))`` of (N, K) logits, computed without overflow or log(0)."""
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def cross_entropy(logits, target, probs=None):
    """Mean cross-entropy of softmax(logits) against ``target``.

    ``E = -1/N * sum_n sum_k t[n, k] * log softmax(z)[n, k]`` and ``dE/dz = (softmax(z) - t) / N``:
    the stable, fused gradient through the softmax. ``probs`` may pass softmax(logits) when the
    caller has it already.
    """
    n = logits.shape[0]
    logp = log_softmax(logits)
    grad = np.exp(logp) if probs is None else np.array(probs, dtype=logits.dtype)
    if target.ndim == 1:
        rows = np.arange(n)
        value = -logp[rows, target].sum()
        grad[rows, target] -= 1
    else:
        # 0 * log(0) counts as 0: a target of 0 contributes nothing, whatever the probability.
        value = -np.where(target > 0, target * logp, 0).sum()
        grad -= target
    grad /= max(n, 1)
    return float(value) / max(n, 1), grad


def mse(output, target):
    """``E = 1/2 * sum_k (y_k - t_k)^2`` per sample, averaged over the batch; ``dE/dy = (y - t) / N``.

    Integer labels (N,) are one-hot encoded to the output's width.
    """
    n = output.shape[0]
    if target.ndim == 1 and output.ndim == 2:
        onehot = np.zeros_like(output)
        onehot[np.arange(n), target] = 1
        target = onehot
    diff = output - target
    value = 0.5 * float(np.sum(diff * diff))
    diff /= max(n, 1)
    return value / max(n, 1), diff
