"""Layers: small Python objects over the compiled kernels in ``layerkit._core``.

Every layer has ``forward(x)`` (also ``layer(x)``) and ``backward(dy)``; backward uses what the last
forward kept and returns the gradient with respect to that forward's input. Layers with parameters
expose them, and their gradients, as zero-copy NumPy views of the C++ buffers.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from . import _core

__all__ = [
    "AvgPool2d",
    "Dense",
    "Flatten",
    "Layer",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
]

_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)


def _int(name, value, *, minimum):
    """``value`` as an int no smaller than ``minimum``; bools and floats are a TypeError."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def _pair(name, value, *, minimum):
    """An int or a pair of ints, as a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return tuple(_int(name, v, minimum=minimum) for v in value)
    v = _int(name, value, minimum=minimum)
    return (v, v)


def _float_dtype(dtype):
    """float32 or float64 as a NumPy dtype; anything else is a TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (_FLOAT32, _FLOAT64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


class Layer:
    """Base class: ``forward``, ``backward``, parameters and a config that rebuilds the layer.

    Calling a layer is calling its ``forward``.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.__call__ = cls.forward  # one Python call less than a __call__ that calls forward

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def parameters(self):
        """``[(name, value, grad), ...]``: zero-copy views, updated in place by optimizers."""
        return []

    # The training loop calls these: like forward and backward, but a compiled layer may return
    # a view of a buffer it reuses at its next call, which saves an allocation per step. The
    # caller must be done with the result before calling the same layer again.
    def _fwd(self, x):
        return self.forward(x)

    def _bwd(self, dy, need_dx=True):
        return self.backward(dy)

    def _train_calls(self):
        """``(forward, backward)`` for the steps of a fit after its first: as _fwd and _bwd, but a
        compiled layer hands over its kernel's own methods, settled by the first step for the
        batch dtype, so that a step spends less time in Python."""
        return self._fwd, self._bwd

    def get_config(self):
        """The constructor arguments, as plain JSON-compatible values."""
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _Compiled(Layer):
    """A parameterless layer backed by a float32 and a float64 core object.

    float32 and float64 input is computed in its own dtype; any other real input in float64.
    """

    _cores = (None, None)  # (float32 class, float64 class), set by subclasses

    def __init__(self):
        self._impls = [None, None]
        self._last = None

    def _core_args(self):
        return ()

    def _impl_for(self, x):
        """The core object for x's dtype (made at first use), and x as an array."""
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        dt = x.dtype
        i = 0 if dt is _FLOAT32 or dt == _FLOAT32 else 1
        impl = self._impls[i]
        if impl is None:
            impl = self._impls[i] = self._cores[i](*self._core_args())
        return impl, x

    def _run(self, impl, x, reuse):
        return impl.forward(x, reuse)

    def forward(self, x):
        impl, x = self._impl_for(x)
        y = self._run(impl, x, False)
        self._last = impl
        return y

    def backward(self, dy):
        if self._last is None:
            raise ValueError(f"{type(self).__name__}.backward called before forward")
        return self._last.backward(dy)

    def _fwd(self, x):
        impl, x = self._impl_for(x)
        y = self._run(impl, x, True)
        self._last = impl
        return y

    def _bwd(self, dy, need_dx=True):
        if self._last is None:
            raise ValueError(f"{type(self).__name__}.backward called before forward")
        return self._last.backward(dy, True)

    def _train_calls(self):
        impl, run, bwd = self._last, self._run, self._last.backward
        return (lambda x: run(impl, x, True)), (lambda dy, need_dx=True: bwd(dy, True))


class Softmax(_Compiled):
    """Softmax along ``axis``: ``y = exp(x - max x) / sum(exp(x - max x))``.

    Stable for any finite logits (the max is subtracted first). Backward is the vector-Jacobian
    product ``dx = y * (dy - sum(dy * y))`` along the axis, in O(axis length).

    Shape:
        x: any shape with at least one dimension; y: the same shape.
    """

    _cores = (_core.SoftmaxF32, _core.SoftmaxF64)

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = _int("axis", axis, minimum=None)

    def _run(self, impl, x, reuse):
        return impl.forward(x, self.axis, reuse)

    def get_config(self):
        return {"axis": self.axis}


class ReLU(_Compiled):
    """``y = max(x, 0)``; backward passes ``dy`` where ``y > 0``. Any shape."""

    _cores = (_core.ReLUF32, _core.ReLUF64)


class Sigmoid(_Compiled):
    """``y = 1 / (1 + exp(-x))``, evaluated without overflow; ``dx = dy * y * (1 - y)``. Any shape."""

    _cores = (_core.SigmoidF32, _core.SigmoidF64)


class Tanh(_Compiled):
    """``y = tanh(x)``; ``dx = dy * (1 - y**2)``. Any shape."""

    _cores = (_core.TanhF32, _core.TanhF64)


class AvgPool2d(_Compiled):
    """2-D average pooling over NCHW or CHW input, with the semantics of ``torch.nn.AvgPool2d``.

    Parameters
    ----------
    kernel_size : int or (int, int)
        Window height and width.
    stride : int or (int, int), optional
        Step between windows; defaults to ``kernel_size``.
    padding : int or (int, int)
        Implicit zero padding on both sides; at most half the kernel size.
    ceil_mode : bool
        Round the output size up, so a last partial window is kept (unless it would start in the
        right padding).
    count_include_pad : bool
        Whether padding counts in the divisor (the part of a window past the padding never does).
    divisor_override : int, optional
        A fixed positive divisor for every window.

    Shape:
        x: (N, C, H, W) or (C, H, W); y: (N, C, OH, OW) or (C, OH, OW) with
        ``OH = floor((H + 2 * pad - kernel) / stride) + 1`` (``ceil`` in ceil_mode).
        Backward spreads ``dy / divisor`` over each window; overlaps add.
    """

    _cores = (_core.AvgPool2dF32, _core.AvgPool2dF64)

    def __init__(
        self,
        kernel_size=2,
        stride=None,
        padding=0,
        ceil_mode=False,
        count_include_pad=True,
        divisor_override=None,
    ):
        super().__init__()
        self.kernel_size = _pair("kernel_size", kernel_size, minimum=1)
        self.stride = self.kernel_size if stride is None else _pair("stride", stride, minimum=1)
        self.padding = _pair("padding", padding, minimum=0)
        for p, k in zip(self.padding, self.kernel_size):
            if 2 * p > k:
                raise ValueError(
                    f"padding must be at most half the kernel size, got padding={self.padding} "
                    f"for kernel_size={self.kernel_size}"
                )
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = (
            None
            if divisor_override is None
            else _int("divisor_override", divisor_override, minimum=1)
        )

    def _core_args(self):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (kh, kw, sh, sw, ph, pw, self.ceil_mode, self.count_include_pad,
                self.divisor_override or 0)  # fmt: skip

    def get_config(self):
        return {
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
            "divisor_override": self.divisor_override,
        }


class Flatten(Layer):
    """``(N, d1, d2, ...) -> (N, d1 * d2 * ...)``: a view of contiguous input, no copy.

    Shape:
        x: (N, ...) with at least 2 dimensions; y: (N, prod(...)).
    """

    def __init__(self):
        self._in_shape = None

    def forward(self, x):
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"Flatten.forward: x must hold real numbers, got dtype {x.dtype}")
        if x.ndim < 2:
            raise ValueError(
                f"Flatten.forward: expected x of shape (N, ...) with at least 2 dimensions, "
                f"got {x.shape}"
            )
        self._in_shape = x.shape
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))

    def backward(self, dy):
        if self._in_shape is None:
            raise ValueError("Flatten.backward called before forward")
        if not isinstance(dy, np.ndarray):
            dy = np.asarray(dy)
        expected = (self._in_shape[0], math.prod(self._in_shape[1:]))
        if dy.shape != expected:
            raise ValueError(
                f"Flatten.backward: expected dy of shape {expected} (the last forward's output), "
                f"got {dy.shape}"
            )
        return dy.reshape(self._in_shape)


class Dense(Layer):
    """Fully connected layer: ``y = x @ weight + bias``.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of each input and output row.
    bias : bool
        Whether to add a learned bias.
    dtype : float32 or float64
        The dtype of the parameters and of the computation; input is converted to it.
    seed : int, optional
        Seed for the Glorot-uniform initial weights (the bias starts at zero).

    Attributes
    ----------
    weight : ndarray, shape (in_features, out_features)
        ``weight[i, j]`` joins input i to output j. A zero-copy view of the layer's buffer:
        writing into it changes the layer.
    bias : ndarray, shape (out_features,), or None
    grad_weight, grad_bias : ndarray
        ``x.T @ dy`` and ``dy.sum(0)`` of the last backward (overwritten, not accumulated).

    Shape:
        x: (N, in_features) (or (..., in_features)); y: (N, out_features).
        Backward returns ``dx = dy @ weight.T``.
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, seed=None):
        in_features = _int("in_features", in_features, minimum=1)
        out_features = _int("out_features", out_features, minimum=1)
        self.dtype = _float_dtype(dtype)
        core = _core.DenseF32 if self.dtype == _FLOAT32 else _core.DenseF64
        self._impl = core(in_features, out_features, bool(bias))
        limit = math.sqrt(6.0 / (in_features + out_features))
        rng = np.random.default_rng(seed)
        self._impl.weight[...] = rng.uniform(-limit, limit, size=(in_features, out_features))

    in_features = property(lambda self: self._impl.in_features)
    out_features = property(lambda self: self._impl.out_features)
    grad_weight = property(lambda self: self._impl.grad_weight)
    grad_bias = property(lambda self: self._impl.grad_bias)

    @property
    def weight(self):
        return self._impl.weight

    @weight.setter
    def weight(self, value):
        _assign(self._impl.weight, value, "Dense.weight")

    @property
    def bias(self):
        return self._impl.bias

    @bias.setter
    def bias(self, value):
        if self._impl.bias is None:
            raise ValueError("Dense.bias: this layer was built with bias=False")
        _assign(self._impl.bias, value, "Dense.bias")

    def forward(self, x):
        return self._impl.forward(x)

    def backward(self, dy, need_dx=True):
        """Sets ``grad_weight`` and ``grad_bias``; returns ``dx`` (None when ``need_dx`` is false)."""
        return self._impl.backward(dy, need_dx)

    def _fwd(self, x):
        return self._impl.forward(x, True)

    def _bwd(self, dy, need_dx=True):
        return self._impl.backward(dy, need_dx, True)

    def _train_calls(self):
        fwd, bwd = self._impl.forward, self._impl.backward
        return (lambda x: fwd(x, True)), (lambda dy, need_dx=True: bwd(dy, need_dx, True))

    def parameters(self):
        params = [("weight", self._impl.weight, self._impl.grad_weight)]
        if self._impl.bias is not None:
            params.append(("bias", self._impl.bias, self._impl.grad_bias))
        return params

    def get_config(self):
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self._impl.bias is not None,
            "dtype": self.dtype.name,
        }


def _assign(target, value, what):
    """Copies ``value`` into the parameter buffer ``target``, keeping its shape and dtype."""
    value = np.asarray(value)
    if value.dtype.kind not in "biuf":
        raise TypeError(f"{what} must hold real numbers, got dtype {value.dtype}")
    if value.shape != target.shape:
        raise ValueError(f"{what}: expected shape {target.shape}, got {value.shape}")
    target[...] = value
