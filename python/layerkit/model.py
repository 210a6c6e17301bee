"""Sequential: a list of layers with a plain mini-batch training loop."""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
import warnings

import numpy as np

from . import _core
from .layers import Layer, Softmax
from .optim import SGD, Optimizer

__all__ = ["History", "Sequential"]

_LOSSES = ("cross_entropy", "mse")


class History:
    """What ``fit`` returns: ``history`` maps each metric to its per-epoch values.

    Keys are ``loss`` (and ``accuracy`` for cross-entropy), plus ``val_loss`` and
    ``val_accuracy`` when validation data was given.
    """

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.stop_reason = None

    def _append(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


class Sequential:
    """Layers applied in order: forward is a loop, backward the reversed loop.

    Parameters
    ----------
    layers : sequence of Layer
    """

    def __init__(self, layers):
        layers = list(layers)
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: layer {i} is {type(layer).__name__}, not a Layer")
        self.layers = layers
        self.optimizer = None  # set by fit and by load
        self.fit_state = None  # {"seed": ..., "epoch": ...} of the last fit, for resuming

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy):
        """Backpropagates ``dy`` (the gradient of the output); returns the input gradient."""
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def parameters(self):
        """``[(name, value, grad), ...]`` over all layers, named ``"<layer index>.<name>"``."""
        return [
            (f"{i}.{name}", value, grad)
            for i, layer in enumerate(self.layers)
            for name, value, grad in layer.parameters()
        ]

    def __repr__(self):
        inner = "".join(f"\n  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"

    def summary(self):
        """A table of the layers and their parameter counts, as a string."""
        rows = [("#", "layer", "parameters")]
        total = 0
        for i, layer in enumerate(self.layers):
            count = sum(value.size for _, value, _ in layer.parameters())
            total += count
            rows.append((str(i), repr(layer), f"{count:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(3)]
        lines = [f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}" for r in rows]
        rule = "-" * len(lines[0])
        return "\n".join([lines[0], rule, *lines[1:], rule, f"total parameters: {total:,}"])

    def save(self, path, include_optimizer=True):
        """Writes the architecture, every parameter and (unless told not to) the optimizer's state
        and ``fit_state`` to one ``.npz`` file, atomically (see ``layerkit.load``)."""
        from .serialization import save

        save(self, path, include_optimizer=include_optimizer)

    # ----------------------------------------------------------------- inference
    def predict(self, X, batch_size=256):
        """The model's output for ``X``, computed ``batch_size`` samples at a time."""
        batch_size = _positive("batch_size", batch_size)
        X = _as_samples(X)
        if len(X) <= batch_size:
            return self.forward(X)
        return np.concatenate(
            [self.forward(X[i : i + batch_size]) for i in range(0, len(X), batch_size)]
        )

    def evaluate(self, X, y, *, loss="cross_entropy", batch_size=256):
        """``{"loss": ..., "accuracy": ...}`` over ``X`` (accuracy only for cross-entropy)."""
        _loss(loss)
        batch_size = _positive("batch_size", batch_size)
        X = _as_samples(X)
        if len(X) == 0:
            raise ValueError("evaluate: X holds no samples")
        # Cross-entropy wants logits: with a final Softmax, stop just before it.
        z = np.concatenate(
            [
                _float_output(self._forward_body(loss, X[i : i + batch_size]))
                for i in range(0, len(X), batch_size)
            ]
        )
        t = self._targets(y, len(X), z, loss)
        total, correct = _loss_sum(loss, z, t, None)
        logs = {"loss": total / len(X)}
        if loss == "cross_entropy":
            logs["accuracy"] = correct / len(X)
        return logs

    # ------------------------------------------------------------------ training
    def fit(
        self,
        X,
        y,
        *,
        epochs=1,
        batch_size=32,
        loss="cross_entropy",
        optimizer=None,
        shuffle=True,
        seed=None,
        validation_data=None,
        verbose=1,
        initial_epoch=0,
        stop_on_nan=True,
    ):
        """Mini-batch training.

        Parameters
        ----------
        X : array, shape (N, ...)
        y : array
            Integer labels (N,), or targets shaped like the model's output.
        epochs, batch_size : int
        loss : {"cross_entropy", "mse"}
            Cross-entropy treats the output as logits, or as probabilities when the last layer is
            ``Softmax``, whose gradient is then fused: ``(softmax - target) / N``.
        optimizer : Optimizer, optional
            Defaults to ``SGD(lr=0.01)``. Its state carries over between calls to ``fit``.
        shuffle : bool
        seed : int, optional
            Seeds the shuffling; the same seed and starting weights give the same History.
        validation_data : (X_val, y_val), optional
        verbose : {0, 1, 2}
            0 prints nothing; 1 shows a progress bar on a terminal and one line per epoch
            elsewhere; 2 always prints one line per epoch.

        Returns
        -------
        History
        """
        epochs = _positive("epochs", epochs, minimum=0)
        initial_epoch = _positive("initial_epoch", initial_epoch, minimum=0)
        batch_size = _positive("batch_size", batch_size)
        _loss(loss)  # an unknown name fails before any work
        if optimizer is None:
            optimizer = self.optimizer if self.optimizer is not None else SGD()
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer must be a layerkit Optimizer, got {type(optimizer).__name__}"
            )
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        trainer = _Trainer(self, X, y, loss, optimizer, batch_size)
        n = len(trainer.X)
        if validation_data is not None:
            try:
                X_val, y_val = validation_data
            except (TypeError, ValueError):
                raise ValueError("validation_data must be a pair (X_val, y_val)") from None
            X_val = _as_samples(X_val)
            if len(X_val) == 0:
                raise ValueError("fit: validation_data holds no samples")
            self._targets(
                y_val, len(X_val), _float_output(self._forward_body(loss, X_val[:1])), loss
            )

        if seed is None:  # a fresh seed, recorded in fit_state so that the run can be resumed
            seed = int(np.random.SeedSequence().entropy % (1 << 63))
        seed = _positive("seed", seed, minimum=0)
        self.optimizer = optimizer
        history = History()
        n_batches = -(-n // batch_size)
        with _CtrlC() as ctrl_c:
            for epoch in range(initial_epoch, epochs):
                started = time.perf_counter()
                if shuffle:
                    order = (
                        np.random.default_rng([seed, epoch])
                        .permutation(n)
                        .astype(np.int64, copy=False)
                    )
                else:
                    order = np.arange(n, dtype=np.int64)
                total, correct = 0.0, 0
                bar = _progress_bar(verbose, epoch, epochs, n_batches)
                for b in range(n_batches):
                    batch_total, batch_correct = trainer.step(
                        order[b * batch_size : (b + 1) * batch_size], skip_nonfinite=stop_on_nan
                    )
                    if stop_on_nan and not math.isfinite(batch_total):
                        history.stop_reason = "nan"
                        warnings.warn(
                            f"fit: the loss became {batch_total} in epoch {epoch + 1}, batch "
                            f"{b + 1}; training stopped before that batch's update (pass "
                            f"stop_on_nan=False to go on). History holds the completed epochs.",
                            RuntimeWarning,
                            stacklevel=2,
                        )
                        break
                    total += batch_total
                    correct += batch_correct
                    if bar is not None:
                        bar.set_postfix(
                            _postfix(total, correct, b, batch_size, n, loss), refresh=False
                        )
                        bar.update()
                    if ctrl_c.pressed:
                        history.stop_reason = "interrupted"
                        print(
                            f"fit: interrupted in epoch {epoch + 1} after batch {b + 1}; "
                            "returning the History of the completed epochs",
                            file=sys.stderr,
                        )
                        break
                if history.stop_reason is not None:
                    if bar is not None:
                        bar.close()
                    break
                logs = {"loss": total / n}
                if loss == "cross_entropy":
                    logs["accuracy"] = correct / n
                if validation_data is not None:
                    val = self.evaluate(X_val, y_val, loss=loss)
                    logs.update({f"val_{k}": v for k, v in val.items()})
                history._append(epoch, logs)
                self.fit_state = {"seed": seed, "epoch": epoch + 1}
                if bar is not None:
                    bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()})
                    bar.close()
                elif verbose:
                    line = " - ".join(f"{k} {v:.4f}" for k, v in logs.items())
                    elapsed = time.perf_counter() - started
                    print(f"epoch {epoch + 1}/{epochs} - {line} - {elapsed:.2f}s", flush=True)
        return history

    def loss_and_gradients(self, X, y, *, loss="cross_entropy"):
        """Forward and backward over one batch: returns the mean loss and leaves the gradient of
        that loss in every layer's ``grad_*`` views (as one step of ``fit`` does)."""
        _loss(loss)  # an unknown name fails before any work
        X = _as_samples(X)
        if len(X) == 0:
            raise ValueError("loss_and_gradients: X holds no samples")
        sample = _float_output(self._forward_body(loss, X[:1]))
        t = self._targets(y, len(X), sample, loss)
        total, _ = self._backprop(X, t, loss, None, self._first_trainable())
        return total / len(X)

    # ------------------------------------------------------------------ helpers
    def _body(self, loss):
        """The layers a loss sees the output of: all of them, or all but a final Softmax that
        cross-entropy fuses with (its gradient is then ``(softmax(z) - t) / N`` in one step)."""
        last = self.layers[-1]
        fused = loss == "cross_entropy" and isinstance(last, Softmax) and last.axis in (-1, 1)
        return self.layers[:-1] if fused and len(self.layers) > 1 else self.layers

    def _forward_body(self, loss, x):
        """x through the layers the loss sees the output of."""
        for layer in self._body(loss):
            x = layer.forward(x)
        return x

    def _first_trainable(self):
        """Index of the first layer with parameters: backward can stop there."""
        for i, layer in enumerate(self.layers):
            if layer.parameters():
                return i
        return len(self.layers)

    def _input_dtype(self, X):
        """The dtype fit feeds batches in: that of the first layer with parameters."""
        for layer in self.layers:
            for _, value, _ in layer.parameters():
                return value.dtype
        return X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)

    def _backprop(self, x, t, loss, grad, first):
        """One forward and backward pass (the training loop's, with reused buffers) on checked
        targets; returns the loss summed over the batch and the count of right answers."""
        calls = [(layer._fwd, layer._bwd) for layer in self._body(loss)]
        return _backprop(*_passes(calls, first), x, t, loss, grad)

    def _targets(self, y, n, sample_out, loss):
        """``y`` checked against the model's output and converted to the form the loss takes."""
        if not isinstance(y, np.ndarray):
            y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"targets must hold real numbers, got dtype {y.dtype}")
        if len(y) != n:
            raise ValueError(f"X holds {n} samples but the targets hold {len(y)}")
        out_shape = sample_out.shape[1:]
        dtype = sample_out.dtype
        if loss == "cross_entropy" and len(out_shape) != 1:
            raise ValueError(
                f"cross_entropy needs a model output of shape (N, K), got (N, *{out_shape})"
            )
        if y.ndim == 1 and len(out_shape) == 1 and out_shape[0] > 1:
            if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
                raise ValueError("class labels must be whole numbers")
            k = out_shape[0]
            if y.min() < 0 or y.max() >= k:
                raise ValueError(
                    f"class labels must lie in [0, {k}) for a model with {k} outputs, "
                    f"got labels from {y.min()} to {y.max()}"
                )
            labels = y.astype(np.int64)
            return labels if loss == "cross_entropy" else np.eye(k, dtype=dtype)[labels]
        if y.ndim == 1 and out_shape == (1,):
            y = y.reshape(n, 1)
        if y.shape[1:] != out_shape:
            raise ValueError(
                f"targets of shape {y.shape} do not fit model outputs of shape (N, *{out_shape})"
            )
        return np.ascontiguousarray(y, dtype=dtype)


class _Trainer:
    """What one fit call keeps: the data, checked targets, and the buffers every step reuses (the
    batch, its targets, the loss gradient), so that a step allocates nothing once warm."""

    def __init__(self, model, X, y, loss, optimizer, batch_size):
        X = _as_samples(X)
        if len(X) == 0:
            raise ValueError("fit: X holds no samples")
        # One forward on a single sample tells the output's shape: targets are checked up front.
        sample = _float_output(model._forward_body(loss, X[:1]))
        self.t = model._targets(y, len(X), sample, loss)
        self.model, self.X, self.loss, self.optimizer = model, X, loss, optimizer
        self.params = [(value, grad) for _, value, grad in model.parameters()]
        self.first = model._first_trainable()
        in_dtype = model._input_dtype(X)
        self.xsrc = np.empty((batch_size, *X.shape[1:]), dtype=X.dtype)
        self.xbuf = self.xsrc if X.dtype == in_dtype else np.empty_like(self.xsrc, in_dtype)
        self.tbuf = np.empty((batch_size, *self.t.shape[1:]), dtype=self.t.dtype)
        self.gbuf = np.empty((batch_size, *sample.shape[1:]), dtype=sample.dtype)
        self.passes = None  # the layers' calls, settled by the first step

    def step(self, idx, skip_nonfinite=False):
        """One optimizer step on the samples idx: (loss summed over them, right answers). With
        skip_nonfinite, a NaN or infinite loss leaves the weights as they were."""
        m = len(idx)
        if self.X.flags.c_contiguous:  # rows gathered by the kernel threads
            _core.take_rows(self.X, idx, self.xsrc)
        else:
            # mode="clip" lets take write straight into the buffer (the indices are valid); the
            # method skips the Python wrapper of np.take.
            self.X.take(idx, 0, self.xsrc[:m], "clip")
        if self.xbuf is not self.xsrc:
            np.copyto(self.xbuf[:m], self.xsrc[:m])
        self.t.take(idx, 0, self.tbuf[:m], "clip")
        x, t, grad = self.xbuf[:m], self.tbuf[:m], self.gbuf[:m]
        if self.passes is None:
            # The first step picks every layer's kernel for the batch dtype; later steps call the
            # kernels' own methods, without the per-call dispatch.
            result = self.model._backprop(x, t, self.loss, grad, self.first)
            calls = [layer._train_calls() for layer in self.model._body(self.loss)]
            self.passes = _passes(calls, self.first)
        else:
            result = _backprop(*self.passes, x, t, self.loss, grad)
        if not (skip_nonfinite and not math.isfinite(result[0])):
            self.optimizer.step(self.params)
        return result


def _passes(calls, first):
    """(forwards, backwards) from the (forward, backward) pairs of a model's layers: the forwards
    in order; the backwards from the last layer down to the first with parameters, which needs no
    input gradient (and the layers before it, pooling or flatten, no backward at all)."""
    forwards = [fwd for fwd, _ in calls]
    backwards = [(calls[i][1], i != first) for i in range(len(calls) - 1, first - 1, -1)]
    return forwards, backwards


def _backprop(forwards, backwards, x, t, loss, grad):
    """x forward, the loss and its gradient (into grad when it fits), and the gradient backward;
    returns the loss summed over the batch and the count of right answers."""
    z = x
    for fwd in forwards:
        z = fwd(z)
    z = _float_output(z)
    if grad is None or grad.shape != z.shape or grad.dtype != z.dtype:
        grad = np.empty_like(z)
    total, correct = _loss_sum(loss, z, t, grad)
    for bwd, need_dx in backwards:
        grad = bwd(grad, need_dx)
    return total, correct


def _float_output(z):
    """A model output as the loss kernels take it: C-contiguous float32 or float64."""
    dtype = z.dtype if z.dtype in (np.float32, np.float64) else np.float64
    return np.ascontiguousarray(z, dtype=dtype)


def _loss_sum(loss, z, t, grad):
    """(loss summed over the batch, rows classified right); grad, unless None, gets dE/dz."""
    if loss == "cross_entropy":
        return _core.softmax_cross_entropy(z, t, grad)
    return _core.mse(z, t, grad), 0


class _CtrlC:
    """Within fit: the first Ctrl-C only sets ``pressed`` (fit stops after the batch in
    progress); a second one interrupts at once. Outside the main thread, Ctrl-C is left alone."""

    def __init__(self):
        self.pressed = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _loss(name):
    if not isinstance(name, str) or name not in _LOSSES:
        raise ValueError(f"loss must be one of {list(_LOSSES)}, got {name!r}")
    return name


def _positive(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _as_samples(X):
    if not isinstance(X, np.ndarray):
        X = np.asarray(X)
    if X.ndim == 0:
        raise ValueError("X must have a leading sample axis, got a scalar")
    return X


def _postfix(total, correct, b, batch_size, n, loss):
    seen = min((b + 1) * batch_size, n)
    post = {"loss": f"{total / seen:.4f}"}
    if loss == "cross_entropy":
        post["accuracy"] = f"{correct / seen:.4f}"
    return post


def _progress_bar(verbose, epoch, epochs, n_batches):
    """A tqdm bar on a terminal at verbose=1; None where one line per epoch is printed instead."""
    if verbose != 1 or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=True)
