"""Thread count API, and results that are bitwise identical whatever the thread count."""

import threading

import layerkit as lk
import numpy as np
import pytest
from conftest import assert_matches
from layerkit import reference as ref

COUNTS = [1, 2, 4, 8]


def test_thread_count_api():
    default = lk.get_num_threads()
    assert default >= 1
    with lk.threads(3):
        assert lk.get_num_threads() == 3
        with lk.threads(1):
            assert lk.get_num_threads() == 1
        assert lk.get_num_threads() == 3
    assert lk.get_num_threads() == default
    lk.set_num_threads(2)
    assert lk.get_num_threads() == 2
    lk.set_num_threads(default)
    with pytest.raises(ValueError, match="at least 1"):
        lk.set_num_threads(0)
    with pytest.raises(TypeError, match="integer"):
        lk.set_num_threads(2.0)


def _per_count(fn):
    results = []
    for n in COUNTS:
        with lk.threads(n):
            results.append(fn())
    return results


def _assert_all_equal(results):
    first = results[0]
    for other in results[1:]:
        for a, b in zip(first, other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda dt: lk.Dense(300, 500, dtype=dt, seed=0), (257, 300)),
        (lambda dt: lk.Dense(1000, 1100, dtype=dt, seed=0), (2, 1000)),  # thin: no packing
        (lambda dt: lk.Dense(1000, 1200, dtype=dt, seed=0), (600, 1000)),  # packed in chunks
        (lambda dt: lk.Softmax(), (512, 1000)),
        (lambda dt: lk.Softmax(axis=0), (300, 70)),
        (lambda dt: lk.AvgPool2d(2), (64, 16, 28, 28)),
        (lambda dt: lk.AvgPool2d(3, 2, 1, ceil_mode=True), (32, 8, 27, 27)),
        (lambda dt: lk.ReLU(), (400, 1000)),
        (lambda dt: lk.Sigmoid(), (400, 1000)),
        (lambda dt: lk.Tanh(), (400, 1000)),
    ],
)
def test_layers_are_bitwise_identical_for_any_thread_count(rng, dtype, make, shape):
    x = rng.standard_normal(shape).astype(dtype)
    layer = make(dtype)
    dy = rng.standard_normal(np.shape(layer(x))).astype(dtype)

    def run():
        y = layer(x)
        dx = layer.backward(dy)
        grads = [g.copy() for _, _, g in layer.parameters()]
        return [y, dx, *grads]

    _assert_all_equal(_per_count(run))


def test_fit_is_bitwise_identical_for_any_thread_count(rng):
    X = rng.standard_normal((600, 200)).astype(np.float32)
    y = rng.integers(0, 10, 600)

    def run():
        model = lk.Sequential(
            [lk.Dense(200, 256, seed=0), lk.ReLU(), lk.Dense(256, 10, seed=1), lk.Softmax()]
        )
        hist = model.fit(
            X, y, epochs=2, batch_size=100, optimizer=lk.Adam(lr=1e-3), seed=5, verbose=0
        )
        return [np.array(hist.history["loss"]), *[v.copy() for _, v, _ in model.parameters()]]

    _assert_all_equal(_per_count(run))


def test_portable_kernels_match_the_reference(rng, dtype):
    """The kernels for CPUs without AVX2 (forced here) give the same answers as the reference."""
    x = rng.standard_normal((37, 53)).astype(dtype)
    with lk.diagnostics.portable_kernels():
        d = lk.Dense(53, 29, dtype=dtype, seed=0)
        assert_matches(d(x), ref.dense_forward(x, d.weight, d.bias), dtype)
        dy = rng.standard_normal((37, 29)).astype(dtype)
        assert_matches(d.backward(dy), ref.dense_backward(x, d.weight, dy)[0], dtype)
        assert_matches(d(x[:2]), ref.dense_forward(x[:2], d.weight, d.bias), dtype)  # unpacked
        s = lk.Softmax()
        assert_matches(s(x), ref.softmax_forward(x), dtype)
        assert_matches(lk.Sigmoid()(x), ref.sigmoid_forward(x), dtype)
        p = lk.AvgPool2d(2)
        x4 = x[None, None]
        assert_matches(p(x4), ref.avgpool2d_forward(x4, 2), dtype)


def test_separate_models_train_in_parallel_python_threads(rng):
    """Kernels release the GIL; models trained in threads match models trained alone."""
    X = rng.standard_normal((256, 64)).astype(np.float32)
    y = rng.integers(0, 4, 256)

    def train(seed, out):
        model = lk.Sequential(
            [lk.Dense(64, 32, seed=seed), lk.Tanh(), lk.Dense(32, 4, seed=seed + 1)]
        )
        model.fit(X, y, epochs=3, batch_size=32, optimizer=lk.SGD(lr=0.05), seed=seed, verbose=0)
        out[seed] = [v.copy() for _, v, _ in model.parameters()]

    alone, together = {}, {}
    for seed in range(4):
        train(seed, alone)
    threads = [threading.Thread(target=train, args=(seed, together)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in range(4):
        for a, b in zip(alone[seed], together[seed]):
            np.testing.assert_array_equal(a, b)


def _forward_in_child(conn):
    with lk.threads(2):
        d = lk.Dense(300, 500, seed=0)
        conn.send(d(np.ones((257, 300), np.float32)))
    conn.close()


def test_kernels_work_in_a_forked_child():
    """A child forked after the pool started has none of its threads: it must make new ones."""
    import multiprocessing

    with lk.threads(2):
        lk.Dense(300, 500, seed=0)(np.ones((257, 300), np.float32))  # the pool is running
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_forward_in_child, args=(child,))
    p.start()
    try:
        assert parent.poll(60), "the forked child hung"
        got = parent.recv()
        p.join(10)
        assert p.exitcode == 0
    finally:
        if p.is_alive():
            p.kill()
    np.testing.assert_array_equal(got, lk.Dense(300, 500, seed=0)(np.ones((257, 300), np.float32)))
