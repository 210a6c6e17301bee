import contextlib
import gc
import math

import layerkit as lk
import numpy as np
import pytest
from conftest import assert_matches, noncontiguous
from layerkit import reference as ref

SHAPES = [
    (1, 1, 1),
    (1, 784, 10),
    (2, 5, 23),
    (7, 13, 5),
    (32, 64, 128),
    (3, 130, 515),
    (64, 16, 64),
    (2, 1000, 1100),  # thin: unpacked, its columns split across threads
    (257, 300, 500),  # threaded: rows split, the weights packed once for all tasks
    (40, 700, 90),  # threaded: columns split, the input packed once for all tasks
    (600, 1000, 1200),  # the operand packed ahead does not fit one 4 MiB chunk
]


def make(in_f, out_f, dtype, rng, bias=True):
    d = lk.Dense(in_f, out_f, bias=bias, dtype=dtype, seed=int(rng.integers(1 << 31)))
    if bias:
        d.bias[...] = rng.standard_normal(out_f)
    return d


@pytest.mark.parametrize(("n", "in_f", "out_f"), SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_forward_and_backward_match_reference(rng, dtype, n, in_f, out_f, bias):
    d = make(in_f, out_f, dtype, rng, bias)
    x = rng.standard_normal((n, in_f)).astype(dtype)
    dy = rng.standard_normal((n, out_f)).astype(dtype)
    W = d.weight.copy()
    b = d.bias.copy() if bias else None
    assert_matches(d.forward(x), ref.dense_forward(x, W, b), dtype)
    dx, dW, db = ref.dense_backward(x, W, dy)
    assert_matches(d.backward(dy), dx, dtype)
    assert_matches(d.grad_weight, dW, dtype)
    if bias:
        assert_matches(d.grad_bias, db, dtype)
    else:
        assert d.bias is None and d.grad_bias is None


def test_leading_dimensions_are_batch(rng, dtype):
    d = make(6, 4, dtype, rng)
    x = rng.standard_normal((2, 3, 6)).astype(dtype)
    dy = rng.standard_normal((2, 3, 4)).astype(dtype)
    assert_matches(d(x), ref.dense_forward(x, d.weight, d.bias), dtype)
    dx, dW, db = ref.dense_backward(x, d.weight, dy)
    assert_matches(d.backward(dy), dx, dtype)
    assert_matches(d.grad_weight, dW, dtype)
    assert_matches(d.grad_bias, db, dtype)
    y1 = d(x[0, 0])
    assert y1.shape == (4,)


def test_gradients_are_overwritten_not_accumulated(rng, dtype):
    d = make(5, 3, dtype, rng)
    x = rng.standard_normal((4, 5)).astype(dtype)
    dy = rng.standard_normal((4, 3)).astype(dtype)
    d(x)
    d.backward(dy)
    first = d.grad_weight.copy(), d.grad_bias.copy()
    d.backward(dy)
    np.testing.assert_array_equal(d.grad_weight, first[0])
    np.testing.assert_array_equal(d.grad_bias, first[1])


def test_backward_uses_the_input_as_it_was_at_forward(rng, dtype):
    # forward keeps its own copy of x: writing into x afterwards changes nothing. The training
    # loop's path reads its (untouched) buffer in place and gives the same gradients.
    d = make(5, 3, dtype, rng)
    x = rng.standard_normal((4, 5)).astype(dtype)
    dy = rng.standard_normal((4, 3)).astype(dtype)
    _, dW, _ = ref.dense_backward(x, d.weight, dy)
    d(x)
    x[...] = 7
    d.backward(dy)
    assert_matches(d.grad_weight, dW, dtype)
    x2 = x.copy()
    d._fwd(x2)
    d._bwd(dy, need_dx=False)
    _, dW2, _ = ref.dense_backward(x2, d.weight, dy)
    assert_matches(d.grad_weight, dW2, dtype)


def test_parameters_are_zero_copy_views(rng):
    d = lk.Dense(3, 2, dtype=np.float64, seed=0)
    w = d.weight
    assert np.shares_memory(w, d.weight)
    assert np.shares_memory(d.grad_weight, d.parameters()[0][2])
    x = rng.standard_normal((4, 3))
    before = d(x)
    w[0, 1] += 1.0  # writing into the view changes the layer
    np.testing.assert_allclose(d(x)[:, 1] - before[:, 1], x[:, 0], rtol=1e-12)
    d.bias[:] = 5.0
    np.testing.assert_allclose(d(x), x @ w + 5.0, rtol=1e-12)
    d.weight = np.zeros((3, 2))  # assignment copies into the same buffer
    assert np.shares_memory(w, d.weight)
    np.testing.assert_array_equal(w, 0)
    # A view keeps its layer alive.
    del d
    gc.collect()
    w[...] = 2.0
    np.testing.assert_array_equal(w, 2.0)


def test_glorot_uniform_init_and_seed(dtype):
    a = lk.Dense(300, 200, dtype=dtype, seed=7)
    b = lk.Dense(300, 200, dtype=dtype, seed=7)
    c = lk.Dense(300, 200, dtype=dtype, seed=8)
    np.testing.assert_array_equal(a.weight, b.weight)
    assert not np.array_equal(a.weight, c.weight)
    limit = math.sqrt(6 / 500)
    assert np.abs(a.weight).max() <= limit
    assert np.abs(a.weight).max() > 0.99 * limit  # fills the range
    assert abs(a.weight.mean()) < 0.01 * limit
    np.testing.assert_allclose(a.weight.var(), limit**2 / 3, rtol=0.05)
    np.testing.assert_array_equal(a.bias, 0)
    assert a.weight.dtype == dtype and a.bias.dtype == dtype


def test_input_is_converted_to_the_layer_dtype(rng, dtype):
    d = make(4, 3, dtype, rng)
    x = rng.standard_normal((5, 4))
    for xin in (x, x.astype(np.float32), np.rint(3 * x).astype(np.int32), x.tolist()):
        y = d(xin)
        assert y.dtype == dtype
        xin64 = np.asarray(xin, dtype=dtype)
        assert_matches(y, ref.dense_forward(xin64, d.weight, d.bias), dtype)


def test_noncontiguous_input_matches_contiguous(rng, dtype):
    d = make(7, 5, dtype, rng)
    x = rng.standard_normal((6, 7)).astype(dtype)
    dy = rng.standard_normal((6, 5)).astype(dtype)
    y = d(x)
    dx = d.backward(dy)
    np.testing.assert_array_equal(d(noncontiguous(x)), y)
    np.testing.assert_array_equal(d.backward(noncontiguous(dy)), dx)
    np.testing.assert_array_equal(d(np.asfortranarray(x)), y)
    np.testing.assert_array_equal(d(x.T.copy().T), y)


def test_need_dx_false_still_sets_gradients(rng):
    d = make(4, 3, np.float64, rng)
    x = rng.standard_normal((5, 4))
    dy = rng.standard_normal((5, 3))
    d(x)
    assert d.backward(dy, need_dx=False) is None
    assert_matches(d.grad_weight, x.T @ dy, np.float64)


def test_empty_batch(dtype):
    d = lk.Dense(4, 3, dtype=dtype, seed=0)
    y = d(np.zeros((0, 4)))
    assert y.shape == (0, 3) and y.dtype == dtype
    dx = d.backward(np.zeros((0, 3)))
    assert dx.shape == (0, 4)
    np.testing.assert_array_equal(d.grad_weight, 0)
    np.testing.assert_array_equal(d.grad_bias, 0)


def test_input_is_not_modified(rng):
    d = lk.Dense(4, 3, dtype=np.float64, seed=0)
    x = rng.standard_normal((2, 4))
    x.flags.writeable = False
    copy = x.copy()
    d(x)
    d.backward(np.ones((2, 3)))
    np.testing.assert_array_equal(x, copy)


def test_repr_and_config():
    d = lk.Dense(3, 2, bias=False, dtype=np.float64)
    assert repr(d) == "Dense(in_features=3, out_features=2, bias=False, dtype='float64')"
    e = lk.Dense.from_config(d.get_config())
    assert (e.in_features, e.out_features, e.bias, e.dtype) == (3, 2, None, np.float64)


def test_shape_and_type_errors():
    d = lk.Dense(4, 3)
    with pytest.raises(ValueError, match="Dense.backward called before forward"):
        d.backward(np.ones((2, 3)))
    with pytest.raises(
        ValueError, match=r"Dense.forward: expected x of shape \(N, 4\), got \(2, 5\)"
    ):
        d(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"expected x of shape \(N, 4\), got \(\)"):
        d(np.float32(1))
    with pytest.raises(TypeError, match="real numbers"):
        d(np.array([["a"] * 4]))
    with pytest.raises(TypeError, match="real numbers"):
        d(np.ones((2, 4), dtype=np.complex64))
    with pytest.raises(TypeError, match="real numbers"):
        d(np.ones((2, 4), dtype=object))
    d(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"expected dy of shape \(2, 3\).*got \(2, 4\)"):
        d.backward(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"Dense.weight: expected shape \(4, 3\), got \(3, 4\)"):
        d.weight = np.ones((3, 4))
    with pytest.raises(ValueError, match="bias=False"):
        lk.Dense(2, 2, bias=False).bias = np.ones(2)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((0, 3), {}, ValueError, "in_features must be at least 1"),
        ((3, 0), {}, ValueError, "out_features must be at least 1"),
        ((-1, 3), {}, ValueError, "in_features"),
        ((2.5, 3), {}, TypeError, "in_features must be an integer"),
        ((True, 3), {}, TypeError, "in_features must be an integer"),
        ((2, 3), {"dtype": np.int32}, TypeError, "float32 or float64"),
        ((2, 3), {"dtype": "complex128"}, TypeError, "float32 or float64"),
        ((2, 3), {"dtype": "nonsense"}, TypeError, "float32 or float64"),
    ],
)
def test_constructor_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        lk.Dense(*args, **kwargs)


@pytest.mark.parametrize("kernels", ["best", "portable"])
@pytest.mark.parametrize("rows", [12, 13, 14, 15, 16, 17])
def test_every_height_of_a_last_tile(rng, dtype, rows, kernels):
    """Tiles are 6 rows high; a last tile of 1 to 5 rows runs a kernel of its own height, in each
    of the three products (forward: batch rows; weight gradient: input features)."""
    in_f, out_f = rows + 7, 40  # 40 columns: a last tile narrower than the kernel, too
    x = rng.standard_normal((rows, in_f)).astype(dtype)
    dy = rng.standard_normal((rows, out_f)).astype(dtype)
    context = lk.diagnostics.portable_kernels if kernels == "portable" else contextlib.nullcontext
    with context():
        d = lk.Dense(in_f, out_f, dtype=dtype, seed=0)
        assert_matches(d.forward(x), ref.dense_forward(x, d.weight, d.bias), dtype)
        dx = d.backward(dy)
    want_dx, want_dw, want_db = ref.dense_backward(x, d.weight, dy)
    assert_matches(dx, want_dx, dtype)
    assert_matches(d.grad_weight, want_dw, dtype)
    assert_matches(d.grad_bias, want_db, dtype)
