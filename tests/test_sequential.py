import io
import sys

import layerkit as lk
import numpy as np
import pytest
from layerkit import reference as ref
from layerkit.demo import build_model, load_digits_split


def blobs(rng, n=120, k=3, d=4):
    """Separable Gaussian clusters: (X, labels)."""
    centers = 4 * rng.standard_normal((k, d))
    y = rng.integers(0, k, size=n)
    return (centers[y] + rng.standard_normal((n, d))).astype(np.float32), y


def small_model(seed=0, dtype=np.float32, softmax=True):
    layers = [
        lk.Dense(4, 16, dtype=dtype, seed=seed),
        lk.ReLU(),
        lk.Dense(16, 3, dtype=dtype, seed=seed + 1),
    ]
    return lk.Sequential([*layers, lk.Softmax()] if softmax else layers)


def test_forward_backward_compose_the_layers(rng):
    model = small_model(dtype=np.float64)
    x = rng.standard_normal((5, 4))
    d0, _, d2, _ = model.layers
    h = ref.relu_forward(ref.dense_forward(x, d0.weight, d0.bias))
    expected = ref.softmax_forward(ref.dense_forward(h, d2.weight, d2.bias))
    np.testing.assert_allclose(model(x), expected, rtol=1e-12)
    dy = rng.standard_normal((5, 3))
    dx = model.backward(dy)
    assert dx.shape == (5, 4)


def test_loss_falls_and_history(rng):
    X, y = blobs(rng)
    model = small_model()
    hist = model.fit(X, y, epochs=8, optimizer=lk.SGD(lr=0.1), seed=0, verbose=0)
    assert isinstance(hist, lk.History)
    assert set(hist.history) == {"loss", "accuracy"}
    assert hist.epoch == list(range(8))
    losses = hist.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert hist.history["accuracy"][-1] > 0.9
    # The History's last loss is the mean over the epoch's batches, which the evaluated loss of
    # the final weights should not exceed by much.
    assert model.evaluate(X, y)["loss"] < losses[0]


def test_validation_and_mse_keys(rng):
    X, y = blobs(rng)
    hist = small_model().fit(X, y, epochs=2, seed=0, verbose=0, validation_data=(X[:20], y[:20]))
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    hist = small_model().fit(X, y, epochs=2, loss="mse", seed=0, verbose=0)
    assert set(hist.history) == {"loss"}


def test_same_seed_same_everything(rng):
    X, y = blobs(rng)

    def train():
        model = small_model(seed=3)
        hist = model.fit(
            X, y, epochs=3, batch_size=16, optimizer=lk.Adam(lr=0.01), seed=11, verbose=0
        )
        return hist.history, [v.copy() for _, v, _ in model.parameters()]

    (h1, p1), (h2, p2) = train(), train()
    assert h1 == h2
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)
    model = small_model(seed=3)
    h3 = model.fit(X, y, epochs=3, batch_size=16, optimizer=lk.Adam(lr=0.01), seed=12, verbose=0)
    assert h3.history != h1


def test_no_shuffle_is_plain_minibatch_sgd(rng):
    X, y = blobs(rng, n=10)
    a, b = small_model(dtype=np.float64), small_model(dtype=np.float64)
    a.fit(X, y, epochs=1, batch_size=4, optimizer=lk.SGD(lr=0.1), shuffle=False, verbose=0)
    opt = lk.SGD(lr=0.1)
    params = [(v, g) for _, v, g in b.parameters()]
    for i in range(0, 10, 4):
        b.loss_and_gradients(X[i : i + 4], y[i : i + 4])
        opt.step(params)
    for (_, va, _), (_, vb, _) in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(va, vb)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_every_step_of_fit_is_a_plain_step_on_its_batch(rng, loss):
    """After its first step, fit calls the kernels that step picked directly: its weights must
    still equal, bit for bit, batch-by-batch loss_and_gradients and an optimizer step, through
    every kind of layer (a Softmax inside the model too) and a short last batch."""

    def model():
        return lk.Sequential(
            [
                lk.AvgPool2d(2),
                lk.Flatten(),
                lk.Dense(9, 8, seed=0),
                lk.Tanh(),
                lk.Softmax(),
                lk.Dense(8, 5, seed=1),
                lk.Sigmoid(),
                lk.Dense(5, 4, seed=2),
                lk.ReLU(),
                lk.Dense(4, 3, seed=3),
                lk.Softmax(),
            ]
        )

    X = rng.standard_normal((10, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 10)
    a, b = model(), model()
    a.fit(X, y, epochs=2, batch_size=4, loss=loss, optimizer=lk.Adam(lr=0.05), shuffle=False)
    opt = lk.Adam(lr=0.05)
    params = [(v, g) for _, v, g in b.parameters()]
    for _ in range(2):
        for i in range(0, 10, 4):
            b.loss_and_gradients(X[i : i + 4], y[i : i + 4], loss=loss)
            opt.step(params)
    for (_, va, _), (_, vb, _), (_, v0, _) in zip(
        a.parameters(), b.parameters(), model().parameters()
    ):
        assert not np.array_equal(va, v0)
        np.testing.assert_array_equal(va, vb)


def test_fused_softmax_gradient_equals_logits_gradient(rng):
    """Cross-entropy through a final Softmax (fused) and on raw logits give the same gradients."""
    x, t = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    with_softmax, logits_only = (
        small_model(dtype=np.float64),
        small_model(dtype=np.float64, softmax=False),
    )
    la = with_softmax.loss_and_gradients(x, t)
    lb = logits_only.loss_and_gradients(x, t)
    assert la == pytest.approx(lb, rel=1e-14)
    for (_, _, ga), (_, _, gb) in zip(with_softmax.parameters(), logits_only.parameters()):
        np.testing.assert_allclose(ga, gb, rtol=1e-12, atol=1e-15)


def test_targets_as_labels_onehot_and_floats_agree(rng):
    X, y = blobs(rng, n=30)
    onehot = np.eye(3)[y]
    m = small_model(dtype=np.float64)
    a = m.evaluate(X, y)
    assert m.evaluate(X, onehot) == pytest.approx(a)
    assert m.evaluate(X, y.astype(float)) == pytest.approx(a)
    assert m.evaluate(X, y, loss="mse") == pytest.approx(m.evaluate(X, onehot, loss="mse"))


def test_evaluate_matches_numpy(rng):
    X, y = blobs(rng, n=50)
    model = small_model(dtype=np.float64)
    p = model.predict(X)  # the model ends in Softmax, so predict gives probabilities
    ce = -np.mean(np.log(p[np.arange(50), y]))
    acc = np.mean(p.argmax(1) == y)
    result = model.evaluate(X, y, batch_size=7)
    assert result["loss"] == pytest.approx(ce, rel=1e-12)
    assert result["accuracy"] == acc
    mse = 0.5 * np.sum((p - np.eye(3)[y]) ** 2) / 50
    assert model.evaluate(X, y, loss="mse")["loss"] == pytest.approx(mse, rel=1e-12)


def test_regression_with_mse(rng):
    X = rng.standard_normal((200, 4))
    w = rng.standard_normal(4)
    y = X @ w + 0.5
    model = lk.Sequential([lk.Dense(4, 1, dtype=np.float64, seed=0)])
    model.fit(X, y, epochs=50, loss="mse", optimizer=lk.SGD(lr=0.1), seed=0, verbose=0)
    np.testing.assert_allclose(model.layers[0].weight[:, 0], w, atol=1e-3)
    np.testing.assert_allclose(model.layers[0].bias, [0.5], atol=1e-3)


def test_predict_in_batches_equals_one_forward(rng):
    X, _ = blobs(rng, n=70)
    model = small_model()
    np.testing.assert_array_equal(model.predict(X, batch_size=8), model.forward(X))
    assert model.predict(X[:0]).shape == (0, 3)


def test_digits_reach_the_demo_bar():
    X_train, y_train, X_test, y_test = load_digits_split(seed=0)
    model = build_model(seed=0)
    model.fit(
        X_train, y_train, epochs=60, optimizer=lk.SGD(lr=0.05, momentum=0.9), seed=0, verbose=0
    )
    assert model.evaluate(X_test, y_test)["accuracy"] >= 0.95


def test_demo_prints_accuracy_last(capsys):
    from layerkit import demo

    demo.main(["--epochs", "3", "--seed", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("test accuracy: 0.")
    assert float(lines[-1].split(":")[1]) > 0.5
    assert sum(line.startswith("epoch ") for line in lines) == 3


def test_verbose_output(rng, capsys):
    X, y = blobs(rng, n=20)
    small_model().fit(X, y, epochs=2, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    small_model().fit(X, y, epochs=3, verbose=1)  # not a terminal: one line per epoch
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("epoch 1/3 - loss ") and "accuracy" in lines[0]


def test_progress_bar_on_a_terminal(rng, monkeypatch, capsys):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    X, y = blobs(rng, n=40)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    small_model().fit(X, y, epochs=2, batch_size=10, verbose=1)
    bar = terminal.getvalue()
    assert "epoch 1/2" in bar and "epoch 2/2" in bar
    assert "4/4" in bar and "loss=" in bar and "accuracy=" in bar
    assert capsys.readouterr().out == ""  # the bar replaces the per-epoch lines
    terminal.truncate(0)
    small_model().fit(X, y, epochs=1, verbose=2)
    assert terminal.getvalue() == ""
    assert capsys.readouterr().out.startswith("epoch 1/1 - loss")


def test_summary_and_repr():
    model = small_model()
    text = model.summary()
    assert "Dense(in_features=4, out_features=16" in text
    assert "total parameters: 131" in text  # 4*16 + 16 + 16*3 + 3
    assert repr(model).startswith("Sequential(\n  (0) Dense(")


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m, X, y: m.fit(X[:0], y[:0]), ValueError, "no samples"),
        (
            lambda m, X, y: m.fit(X, y[:-1]),
            ValueError,
            "X holds 30 samples but the targets hold 29",
        ),
        (lambda m, X, y: m.fit(X, y + 3), ValueError, r"class labels must lie in \[0, 3\)"),
        (lambda m, X, y: m.fit(X, y - 1), ValueError, r"class labels must lie in \[0, 3\)"),
        (lambda m, X, y: m.fit(X, y + 0.5), ValueError, "whole numbers"),
        (lambda m, X, y: m.fit(X, np.ones((30, 4))), ValueError, r"do not fit model outputs"),
        (lambda m, X, y: m.fit(X, y.astype(str)), TypeError, "targets must hold real numbers"),
        (lambda m, X, y: m.fit(X, y, loss="hinge"), ValueError, "loss must be one of"),
        (lambda m, X, y: m.fit(X, y, batch_size=0), ValueError, "batch_size must be at least 1"),
        (lambda m, X, y: m.fit(X, y, batch_size=2.0), TypeError, "batch_size must be an integer"),
        (lambda m, X, y: m.fit(X, y, epochs=-1), ValueError, "epochs must be at least 0"),
        (lambda m, X, y: m.fit(X, y, optimizer="sgd"), TypeError, "layerkit Optimizer"),
        (lambda m, X, y: m.fit(X, y, verbose=5), ValueError, "verbose must be 0, 1 or 2"),
        (lambda m, X, y: m.fit(X, y, validation_data=X), ValueError, "pair"),
        (
            lambda m, X, y: m.fit(X[:, :3], y),
            ValueError,
            r"Dense.forward: expected x of shape \(N, 4\)",
        ),
        (lambda m, X, y: m.evaluate(X[:0], y[:0]), ValueError, "no samples"),
        (lambda m, X, y: m.predict(X, batch_size=0), ValueError, "batch_size"),
    ],
)
def test_fit_errors(rng, call, error, match):
    X, y = blobs(rng, n=30)
    with pytest.raises(error, match=match):
        call(small_model(), X, y)


def test_constructor_errors():
    with pytest.raises(ValueError, match="at least one layer"):
        lk.Sequential([])
    with pytest.raises(TypeError, match="layer 1 is ufunc, not a Layer"):
        lk.Sequential([lk.ReLU(), np.tanh])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.int16])
def test_take_rows_gathers_like_numpy(rng, dtype):
    """fit gathers each shuffled batch with a threaded kernel; it must equal NumPy's take."""
    X = (100 * rng.random((50, 3, 5))).astype(dtype)
    idx = rng.permutation(50)[:17].astype(np.int64)
    out = np.zeros((20, 3, 5), dtype)
    lk._core.take_rows(X, idx, out)
    np.testing.assert_array_equal(out[:17], X[idx])
    assert not out[17:].any()  # rows past the indices are left alone
    lk._core.take_rows(X, idx[:0], out)  # no indices: nothing to do


def test_take_rows_errors(rng):
    X = rng.standard_normal((10, 4))
    out = np.zeros((4, 4))
    idx = np.array([0, 9, 3], dtype=np.int64)
    with pytest.raises(IndexError, match="index 10 is outside"):
        lk._core.take_rows(X, np.array([1, 10]), out)
    with pytest.raises(IndexError, match="index -1 is outside"):
        lk._core.take_rows(X, np.array([-1]), out)
    with pytest.raises(TypeError, match="one dtype"):
        lk._core.take_rows(X, idx, out.astype(np.float32))
    with pytest.raises(ValueError, match="differ"):
        lk._core.take_rows(X, idx, np.empty((4, 5)))
    with pytest.raises(ValueError, match="C-contiguous"):
        lk._core.take_rows(np.asfortranarray(X), idx, out)
    with pytest.raises(ValueError, match="4 rows of out"):
        lk._core.take_rows(X, np.zeros(5, np.int64), out)
    with pytest.raises(TypeError, match="idx must have dtype int64"):
        lk._core.take_rows(X, idx.astype(np.int32), out)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        lk._core.take_rows(X, idx, out)


def test_fit_on_any_layout_of_x(rng):
    """C-contiguous X goes through the gather kernel, other layouts through NumPy: same weights."""
    X, y = blobs(rng, n=70)
    results = []
    for data in (X, np.asfortranarray(X), X[::-1].copy()[::-1]):
        model = small_model()
        model.fit(data, y, epochs=2, batch_size=16, optimizer=lk.SGD(lr=0.1), seed=3, verbose=0)
        results.append([v.copy() for _, v, _ in model.parameters()])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
