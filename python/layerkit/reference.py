"""Plain NumPy reference implementations of every layer's forward and backward pass.

Written to be obviously correct rather than fast (loops where that is clearer), and computed in
float64. layerkit's tests check the compiled layers against these; users may do the same.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "avgpool2d_backward",
    "avgpool2d_forward",
    "avgpool2d_output_size",
    "cross_entropy",
    "dense_backward",
    "dense_forward",
    "mse",
    "relu_backward",
    "relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "softmax_backward",
    "softmax_forward",
    "tanh_backward",
    "tanh_forward",
]


def _f64(a):
    return np.asarray(a, dtype=np.float64)


# ----------------------------------------------------------------------- softmax
def softmax_forward(x, axis=-1):
    """``exp(x - max) / sum(exp(x - max))`` along ``axis``."""
    x = _f64(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_backward(y, dy, axis=-1):
    """``dx = J^T dy`` with the full Jacobian ``J = diag(y) - y y^T`` of each slice along ``axis``."""
    y = np.moveaxis(_f64(y), axis, -1)
    dy = np.moveaxis(_f64(dy), axis, -1)
    dx = np.empty_like(y)
    for idx in np.ndindex(y.shape[:-1]):
        s = y[idx]
        jacobian = np.diag(s) - np.outer(s, s)
        dx[idx] = jacobian.T @ dy[idx]
    return np.moveaxis(dx, -1, axis)


# ------------------------------------------------------------------------- dense
def dense_forward(x, weight, bias=None):
    """``y = x @ W + b`` with W of shape (in, out)."""
    y = _f64(x) @ _f64(weight)
    return y if bias is None else y + _f64(bias)


def dense_backward(x, weight, dy):
    """``(dx, dW, db) = (dy @ W^T, x^T @ dy, sum_n dy)`` over rows of (..., in) input."""
    x, weight, dy = _f64(x), _f64(weight), _f64(dy)
    x2 = x.reshape(-1, weight.shape[0])
    dy2 = dy.reshape(-1, weight.shape[1])
    return (dy @ weight.T, x2.T @ dy2, dy2.sum(axis=0))


# --------------------------------------------------------------------- avgpool2d
def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def avgpool2d_output_size(size, kernel, stride, pad, ceil_mode):
    """PyTorch's output length along one axis."""
    num = size + 2 * pad - kernel + (stride - 1 if ceil_mode else 0)
    out = num // stride + 1  # floor division, also for negative num
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1  # the last window may not start inside the right padding
    return out


def _windows(H, W, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """Yields ``(oh, ow, rows, cols, divisor, (OH, OW))`` for each output position."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel_size), _pair(stride), _pair(padding)
    OH = avgpool2d_output_size(H, kh, sh, ph, ceil_mode)
    OW = avgpool2d_output_size(W, kw, sw, pw, ceil_mode)
    for oh in range(OH):
        for ow in range(OW):
            h0, w0 = oh * sh - ph, ow * sw - pw
            # The window may reach into the padding, but not past it.
            h1, w1 = min(h0 + kh, H + ph), min(w0 + kw, W + pw)
            padded = (h1 - h0) * (w1 - w0)
            rows = range(max(h0, 0), min(h1, H))
            cols = range(max(w0, 0), min(w1, W))
            if divisor_override:
                divisor = divisor_override
            elif count_include_pad:
                divisor = padded
            else:
                divisor = len(rows) * len(cols)
            yield oh, ow, rows, cols, divisor, (OH, OW)


def avgpool2d_forward(
    x,
    kernel_size=2,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    """Average pooling of (N, C, H, W) or (C, H, W) input, with PyTorch's semantics."""
    x = _f64(x)
    stride = kernel_size if stride is None else stride
    H, W = x.shape[-2:]
    out = None
    for oh, ow, rows, cols, divisor, (OH, OW) in _windows(
        H, W, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    ):
        if out is None:
            out = np.zeros((*x.shape[:-2], OH, OW))
        if len(rows) and len(cols):
            window = x[..., rows.start : rows.stop, cols.start : cols.stop]
            out[..., oh, ow] = window.sum(axis=(-2, -1)) / divisor
    return out


def avgpool2d_backward(
    x_shape,
    dy,
    kernel_size=2,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    """Spreads ``dy / divisor`` over each window of an input of shape ``x_shape``; overlaps add."""
    dy = _f64(dy)
    stride = kernel_size if stride is None else stride
    dx = np.zeros(x_shape)
    H, W = x_shape[-2:]
    for oh, ow, rows, cols, divisor, _ in _windows(
        H, W, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    ):
        for h in rows:
            for w in cols:
                dx[..., h, w] += dy[..., oh, ow] / divisor
    return dx


# ------------------------------------------------------------------- activations
def relu_forward(x):
    return np.maximum(_f64(x), 0.0)  # NaN stays NaN


def relu_backward(x, dy):
    return np.where(_f64(x) > 0, _f64(dy), 0.0)


def sigmoid_forward(x):
    with np.errstate(over="ignore"):  # exp(-x) = inf for very negative x gives the right 0
        return 1.0 / (1.0 + np.exp(-_f64(x)))


def sigmoid_backward(y, dy):
    y = _f64(y)
    return _f64(dy) * y * (1.0 - y)


def tanh_forward(x):
    return np.tanh(_f64(x))


def tanh_backward(y, dy):
    y = _f64(y)
    return _f64(dy) * (1.0 - y * y)


# ------------------------------------------------------------------------ losses
def cross_entropy(logits, target):
    """``(E, dE/dz)`` of softmax cross-entropy averaged over the N rows: ``target`` holds N class
    labels or an (N, K) array of probabilities; ``dE/dz = (softmax(z) - t) / N``."""
    z = _f64(logits)
    t = np.asarray(target)
    if t.ndim == 1:
        t = np.eye(z.shape[1])[t]
    t = _f64(t)
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(z)
    return -np.sum(np.where(t != 0, t * log_p, 0.0)) / n, (np.exp(log_p) - t) / n


def mse(output, target):
    """``(E, dE/dy)`` with ``E = 1/2 * sum_k (y_k - t_k)^2`` per sample, averaged over the N rows."""
    d = _f64(output) - _f64(target)
    return 0.5 * np.sum(d * d) / len(d), d / len(d)
