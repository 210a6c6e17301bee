"""Hardening: numerics at the edges, NaN losses, Ctrl-C, resumable checkpoints, leaks, and one
layer used from two threads."""

import gc
import os
import signal
import threading

import layerkit as lk
import numpy as np
import pytest
from layerkit import reference as ref


def mlp(dtype=np.float32, softmax=True):
    layers = [lk.Dense(6, 16, dtype=dtype, seed=0), lk.ReLU(), lk.Dense(16, 3, dtype=dtype, seed=1)]
    return lk.Sequential([*layers, lk.Softmax()] if softmax else layers)


def blobs(rng, n=96):
    y = rng.integers(0, 3, n)
    return (3 * rng.standard_normal((3, 6))[y] + rng.standard_normal((n, 6))).astype(np.float32), y


# ---------------------------------------------------------------------------------- numerics
def test_softmax_documented_behaviour_for_infinities_and_nan():
    y = lk.Softmax()(
        np.array([[0.0, -np.inf, 1.0], [np.inf, 0.0, 0.0], [np.nan, 0, 0], [-np.inf] * 3])
    )
    np.testing.assert_allclose(y[0], ref.softmax_forward([[0.0, -1e300, 1.0]])[0])  # -inf: p = 0
    assert y[0, 1] == 0
    assert np.isnan(y[1:]).all()  # +inf, NaN, or nothing finite: the row is NaN, as in NumPy


def test_cross_entropy_is_finite_when_probabilities_underflow(rng):
    z = np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32)  # softmax underflows to [1, 0, 0]
    value, grad = lk.losses.cross_entropy(z, np.array([2]))
    assert value == pytest.approx(2000.0)
    np.testing.assert_allclose(grad, [[1.0, 0.0, -1.0]], atol=1e-6)
    model = lk.Sequential([lk.Dense(1, 3, dtype=np.float64, seed=0), lk.Softmax()])
    model.layers[0].weight[...] = [[1000.0, 0.0, -1000.0]]
    # evaluate works from the logits, so the loss stays finite although p[label] == 0.0
    assert model.predict(np.ones((1, 1)))[0, 2] == 0.0
    assert model.evaluate(np.ones((1, 1)), [2])["loss"] == pytest.approx(2000.0)


def test_dense_float32_overflow_gives_inf_not_a_crash():
    d = lk.Dense(4, 2, bias=False, seed=0)
    d.weight[...] = 1e30
    y = d(np.full((3, 4), 1e30, dtype=np.float32))
    assert np.isposinf(y).all()
    dx = d.backward(np.ones((3, 2), dtype=np.float32))
    np.testing.assert_allclose(dx, 2e30, rtol=1e-6)  # finite parts stay finite
    np.testing.assert_allclose(d.grad_weight, 3e30, rtol=1e-6)


# ------------------------------------------------------------------------------ NaN in fit
def test_fit_stops_at_a_nan_loss_before_it_reaches_the_weights(rng):
    X, y = blobs(rng)
    X[50] = np.nan
    model = mlp()
    with pytest.warns(RuntimeWarning, match="loss became nan in epoch 1, batch"):
        hist = model.fit(X, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    assert hist.stop_reason == "nan"
    assert hist.history == {}  # no epoch completed
    assert all(np.isfinite(v).all() for _, v, _ in model.parameters())


def test_fit_goes_on_when_asked(rng):
    X, y = blobs(rng)
    X[50] = np.nan
    hist = mlp().fit(X, y, epochs=2, batch_size=8, stop_on_nan=False, verbose=0)
    assert hist.stop_reason is None and len(hist.history["loss"]) == 2
    assert np.isnan(hist.history["loss"]).all()


# ------------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_stops_after_the_current_batch(rng, capsys):
    X, y = blobs(rng)
    model = mlp()
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        hist = model.fit(X, y, epochs=100000, batch_size=8, verbose=0)
    finally:
        timer.cancel()
    assert hist.stop_reason == "interrupted"
    assert 0 < len(hist.epoch) < 100000
    assert "interrupted" in capsys.readouterr().err
    assert model.fit_state["epoch"] == len(hist.epoch)
    assert np.isfinite(model.predict(X)).all()  # consistent and usable
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    model.fit(X, y, epochs=1, verbose=0)  # and it trains on


# ---------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize(
    "make_opt", [lambda: lk.SGD(lr=0.05, momentum=0.9, nesterov=True), lambda: lk.Adam(1e-2)]
)
def test_train_save_load_train_equals_one_run(tmp_path, rng, make_opt):
    X, y = blobs(rng)
    one = mlp()
    h1 = one.fit(X, y, epochs=5, batch_size=16, optimizer=make_opt(), seed=3, verbose=0)

    first = mlp()
    first.fit(X, y, epochs=2, batch_size=16, optimizer=make_opt(), seed=3, verbose=0)
    first.save(tmp_path / "ckpt.npz")
    resumed = lk.load(tmp_path / "ckpt.npz")
    assert resumed.fit_state == {"seed": 3, "epoch": 2}
    assert type(resumed.optimizer) is type(first.optimizer)
    h2 = resumed.fit(X, y, epochs=5, batch_size=16, initial_epoch=2, seed=3, verbose=0)

    assert h2.epoch == [2, 3, 4]
    assert h2.history["loss"] == h1.history["loss"][2:]
    for (_, a, _), (_, b, _) in zip(one.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(a, b)


def test_seedless_fit_records_its_seed(rng):
    X, y = blobs(rng)
    model = mlp()
    model.fit(X, y, epochs=1, verbose=0)
    assert isinstance(model.fit_state["seed"], int)


def test_save_without_optimizer(tmp_path, rng):
    X, y = blobs(rng)
    model = mlp()
    model.fit(X, y, epochs=1, optimizer=lk.Adam(), verbose=0)
    model.save(tmp_path / "m.npz", include_optimizer=False)
    assert lk.load(tmp_path / "m.npz").optimizer is None


def test_a_crash_mid_save_keeps_the_previous_file(tmp_path, rng, monkeypatch):
    path = tmp_path / "m.npz"
    mlp().save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        mlp(np.float64).save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


# ---------------------------------------------------------------------------------- leaks
def _rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status")


@pytest.mark.skipif(
    "libasan" in os.environ.get("LD_PRELOAD", ""),
    reason="AddressSanitizer holds freed memory in quarantine on purpose",
)
def test_resident_memory_stays_flat(rng):
    X = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 64)

    def work(rounds):
        model = lk.Sequential(
            [
                lk.AvgPool2d(2),
                lk.Flatten(),
                lk.Dense(16, 32, seed=0),
                lk.Sigmoid(),
                lk.Dense(32, 10, seed=1),
                lk.Softmax(),
            ]
        )
        opt = lk.Adam()
        params = [(v, g) for _, v, g in model.parameters()]
        for _ in range(rounds):  # forward / backward / optimizer steps
            model.loss_and_gradients(X, y)
            opt.step(params)
            model(X)
            model.backward(np.ones((64, 10), np.float32) / 64)
        for i in range(rounds // 10):  # layers and models made and dropped
            m = lk.Sequential([lk.Dense(8, 8, seed=i), lk.Tanh(), lk.Softmax()])
            m(np.ones((4, 8)))
            m.backward(np.ones((4, 8)))
            _ = m.layers[0].weight  # views keep their layer alive; dropping both frees it

    work(500)  # warm-up: caches, buffers, allocator pools
    gc.collect()
    before = _rss_mb()
    work(5000)
    gc.collect()
    grown = _rss_mb() - before
    print(f"resident memory: {before:.1f} MB before, grew by {grown:.2f} MB over 5000 steps")
    assert grown < 4.0


# --------------------------------------------------------------------- one layer, two threads
def test_one_layer_used_from_two_threads_works_or_says_so(rng):
    d = lk.Dense(512, 512, seed=0)
    x = rng.standard_normal((256, 512)).astype(np.float32)
    expected = d(x)
    results, errors = [], []

    def hammer():
        for _ in range(30):
            try:
                results.append(d(x))
            except RuntimeError as e:
                errors.append(str(e))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) + len(errors) == 90
    for y in results:  # what succeeded is right
        np.testing.assert_array_equal(y, expected)
    for e in errors:  # what did not, said so
        assert "already running in another thread" in e
