"""Sequential: a list of layers with a plain mini-batch training loop."""

from __future__ import annotations

import sys
import time

import numpy as np

from . import losses
from .layers import Dense, Layer, Softmax
from .optim import SGD, Optimizer

__all__ = ["History", "Sequential"]

_LOSSES = {"cross_entropy": losses.cross_entropy, "mse": losses.mse}


class History:
    """What ``fit`` returns: ``history`` maps each metric to its per-epoch values.

    Keys are ``loss`` (and ``accuracy`` for cross-entropy), plus ``val_loss`` and
    ``val_accuracy`` when validation data was given.
    """

    def __init__(self):
        self.history = {}
        self.epoch = []

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

    def save(self, path):
        """Writes the architecture and every parameter to one ``.npz`` file (see ``layerkit.load``)."""
        from .serialization import save

        save(self, path)

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
        loss_fn = _loss(loss)
        batch_size = _positive("batch_size", batch_size)
        X = _as_samples(X)
        if len(X) == 0:
            raise ValueError("evaluate: X holds no samples")
        # Cross-entropy wants logits: with a final Softmax, stop just before it.
        body = self.layers[:-1] if self._fused(loss) else self.layers
        logits = []
        for i in range(0, len(X), batch_size):
            z = X[i : i + batch_size]
            for layer in body:
                z = layer.forward(z)
            logits.append(z)
        logits = np.concatenate(logits)
        t = self._targets(y, len(X), logits, loss)
        value, _ = loss_fn(logits, t)
        logs = {"loss": value}
        if loss == "cross_entropy":
            logs["accuracy"] = _correct(logits, t) / len(X)
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
        batch_size = _positive("batch_size", batch_size)
        _loss(loss)  # an unknown name fails before any work
        if optimizer is None:
            optimizer = SGD()
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer must be a layerkit Optimizer, got {type(optimizer).__name__}"
            )
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        X = _as_samples(X)
        n = len(X)
        if n == 0:
            raise ValueError("fit: X holds no samples")
        # One forward on a single sample tells the output's shape, so targets are checked up front.
        t = self._targets(y, n, self.forward(X[:1]), loss)
        if validation_data is not None:
            try:
                X_val, y_val = validation_data
            except (TypeError, ValueError):
                raise ValueError("validation_data must be a pair (X_val, y_val)") from None
            X_val = _as_samples(X_val)
            if len(X_val) == 0:
                raise ValueError("fit: validation_data holds no samples")
            self._targets(y_val, len(X_val), self.forward(X_val[:1]), loss)

        params = [(value, grad) for _, value, grad in self.parameters()]
        rng = np.random.default_rng(seed)
        history = History()
        n_batches = -(-n // batch_size)
        for epoch in range(epochs):
            started = time.perf_counter()
            order = rng.permutation(n) if shuffle else np.arange(n)
            total, correct = 0.0, 0
            bar = _progress_bar(verbose, epoch, epochs, n_batches)
            for b in range(n_batches):
                idx = order[b * batch_size : (b + 1) * batch_size]
                tb = t[idx]
                value, z = self._backprop(X[idx], tb, loss)
                optimizer.step(params)
                total += value * len(idx)
                if loss == "cross_entropy":
                    correct += _correct(z, tb)
                if bar is not None:
                    bar.set_postfix(_postfix(total, correct, b, batch_size, n, loss), refresh=False)
                    bar.update()
            logs = {"loss": total / n}
            if loss == "cross_entropy":
                logs["accuracy"] = correct / n
            if validation_data is not None:
                val = self.evaluate(X_val, y_val, loss=loss)
                logs.update({f"val_{k}": v for k, v in val.items()})
            history._append(epoch, logs)
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
        t = self._targets(y, len(X), self.forward(X[:1]), loss)
        value, _ = self._backprop(X, t, loss)
        return value

    # ------------------------------------------------------------------ helpers
    def _backprop(self, x, t, loss):
        """One forward and backward pass on checked targets; returns (loss, logits or output)."""
        fused = self._fused(loss)
        body = self.layers[:-1] if fused else self.layers
        z = x
        for layer in body:
            z = layer.forward(z)
        if fused:
            value, grad = losses.cross_entropy(z, t, probs=self.layers[-1].forward(z))
        else:
            value, grad = _LOSSES[loss](z, t)
        for i in range(len(body) - 1, -1, -1):
            if i == 0 and isinstance(body[0], Dense):
                body[0].backward(grad, need_dx=False)  # nobody needs the data's gradient
            else:
                grad = body[i].backward(grad)
        return value, z

    def _fused(self, loss):
        """Whether cross-entropy meets a final Softmax over the class axis (fused gradient)."""
        last = self.layers[-1]
        return loss == "cross_entropy" and isinstance(last, Softmax) and last.axis in (-1, 1)

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
            if n and (y.min() < 0 or y.max() >= k):
                raise ValueError(
                    f"class labels must lie in [0, {k}) for a model with {k} outputs, "
                    f"got labels from {y.min()} to {y.max()}"
                )
            return y.astype(np.intp)
        if y.ndim == 1 and out_shape == (1,):
            y = y.reshape(n, 1)
        if y.shape[1:] != out_shape:
            raise ValueError(
                f"targets of shape {y.shape} do not fit model outputs of shape (N, *{out_shape})"
            )
        return np.ascontiguousarray(y, dtype=dtype)


def _loss(name):
    try:
        return _LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"loss must be one of {sorted(_LOSSES)}, got {name!r}") from None


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


def _correct(logits, t):
    labels = t if t.ndim == 1 else t.argmax(axis=1)
    return int(np.count_nonzero(logits.argmax(axis=1) == labels))


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
