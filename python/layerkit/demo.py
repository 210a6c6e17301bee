"""Train a small network on scikit-learn's bundled 8x8 digits and report test accuracy.

    python -m layerkit.demo [--epochs N] [--batch-size N] [--lr LR] [--seed N]

The model: AvgPool2d(2, stride=1) -> Flatten -> Dense(49, 128) -> ReLU -> Dense(128, 10) -> Softmax
(overlapping 2x2 windows smooth each image to 7x7), trained
with softmax cross-entropy and SGD with momentum on 80% of the images; the last line printed is
the accuracy on the held-out 20%.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import layerkit as lk


def load_digits_split(seed, test_fraction=0.2):
    """(X_train, y_train, X_test, y_test) with X of shape (N, 1, 8, 8) scaled to [0, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit(
            'the demo reads scikit-learn\'s bundled digits: pip install "layerkit[demo]"'
        ) from None
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(X))
    n_test = round(test_fraction * len(X))
    test, train = order[:n_test], order[n_test:]
    return X[train], y[train], X[test], y[test]


def build_model(seed):
    return lk.Sequential(
        [
            lk.AvgPool2d(kernel_size=2, stride=1),
            lk.Flatten(),
            lk.Dense(49, 128, seed=seed),
            lk.ReLU(),
            lk.Dense(128, 10, seed=seed + 1),
            lk.Softmax(),
        ]
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m layerkit.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    X_train, y_train, X_test, y_test = load_digits_split(args.seed)
    model = build_model(args.seed)
    print(f"layerkit {lk.__version__}: digits, {len(X_train)} train / {len(X_test)} test images")
    print(model.summary())
    started = time.perf_counter()
    model.fit(
        X_train,
        y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=lk.SGD(lr=args.lr, momentum=0.9),
        seed=args.seed,
        validation_data=(X_test, y_test),
    )
    elapsed = time.perf_counter() - started
    result = model.evaluate(X_test, y_test)
    print(f"trained {args.epochs} epochs in {elapsed:.2f}s; test loss {result['loss']:.4f}")
    print(f"test accuracy: {result['accuracy']:.4f}")


if __name__ == "__main__":
    main()
