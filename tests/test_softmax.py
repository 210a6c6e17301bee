import contextlib

import layerkit as lk
import numpy as np
import pytest
from conftest import assert_matches, noncontiguous
from layerkit import reference as ref

SHAPES_AXES = [
    ((1, 1), -1),
    ((1, 10), -1),
    ((7, 3), -1),
    ((256, 10), 1),
    ((5, 1000), -1),
    ((13,), 0),
    ((3, 4, 5), 0),
    ((3, 4, 5), 1),
    ((3, 4, 5), -1),
    ((2, 3, 4, 5), -3),
]


@pytest.mark.parametrize(("shape", "axis"), SHAPES_AXES)
def test_forward_and_backward_match_reference(rng, dtype, shape, axis):
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    s = lk.Softmax(axis=axis)
    y = s.forward(x)
    assert_matches(y, ref.softmax_forward(x, axis), dtype)
    assert_matches(
        s.backward(dy), ref.softmax_backward(ref.softmax_forward(x, axis), dy, axis), dtype
    )


def test_backward_is_the_full_jacobian_product_not_its_diagonal(rng):
    x = rng.standard_normal((4, 6))
    dy = rng.standard_normal((4, 6))
    s = lk.Softmax()
    y = s(x)
    dx = s.backward(dy)
    np.testing.assert_allclose(dx, y * (dy - np.sum(dy * y, axis=1, keepdims=True)), rtol=1e-13)
    # The full product is orthogonal to the all-ones direction; the diagonal-only one is not.
    np.testing.assert_allclose(dx.sum(axis=1), 0, atol=1e-15)
    diagonal_only = y * (1 - y) * dy
    assert np.max(np.abs(dx - diagonal_only)) > 1e-2


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_huge_logits_stay_finite(rng, dtype, scale):
    x = (scale * rng.random((8, 10))).astype(dtype)
    x[0] = scale  # a row of equal huge values
    s = lk.Softmax()
    y = s(x)
    assert np.all(np.isfinite(y))
    assert_matches(y, ref.softmax_forward(x), dtype)
    np.testing.assert_allclose(y[0], 0.1, rtol=1e-6)
    dx = s.backward(np.ones_like(x))
    assert np.all(np.isfinite(dx))


@pytest.mark.parametrize(
    "kernels", [contextlib.nullcontext, lk.diagnostics.portable_kernels], ids=["best", "portable"]
)
def test_every_probability_is_accurate_to_a_few_ulps(rng, dtype, kernels):
    # Rows (0, v) with v down to the dtype's underflow: softmax is (1, e^v) / (1 + e^v), so each
    # probability that is a normal number must be right relative to itself (exp and two
    # roundings), not only next to the largest one.
    low = np.log(np.finfo(dtype).tiny)
    v = np.concatenate([rng.uniform(low, 0, 20000), np.linspace(low, 0, 20000)])
    x = np.stack([np.zeros_like(v), v], axis=1).astype(dtype)
    with kernels():
        y = lk.Softmax()(x).astype(np.float64)
    e = np.exp(x.astype(np.float64))
    exact = e / e.sum(axis=1, keepdims=True)
    normal = exact > np.finfo(dtype).tiny
    assert normal.sum() > 70000
    rel = np.abs(y - exact)[normal] / exact[normal]
    assert rel.max() <= 4 * np.finfo(dtype).eps


def test_rows_sum_to_one(rng, dtype):
    y = lk.Softmax()(rng.standard_normal((50, 17)).astype(dtype))
    np.testing.assert_allclose(y.sum(axis=1), 1, rtol=10 * np.finfo(dtype).eps)


def test_noncontiguous_input_gives_contiguous_results(rng, dtype):
    x = rng.standard_normal((6, 9)).astype(dtype)
    dy = rng.standard_normal((6, 9)).astype(dtype)
    a, b = lk.Softmax(), lk.Softmax()
    np.testing.assert_array_equal(a(noncontiguous(x)), b(x))
    np.testing.assert_array_equal(a.backward(noncontiguous(dy)), b.backward(dy))
    # The same values along another axis take the strided kernel: equal within rounding.
    assert_matches(lk.Softmax(axis=0)(x.T), ref.softmax_forward(x).T, dtype)
    np.testing.assert_array_equal(lk.Softmax()(np.asfortranarray(x)), b(x))


def test_input_dtypes(rng):
    x = rng.integers(-5, 5, size=(3, 4))
    y = lk.Softmax()(x)
    assert y.dtype == np.float64
    assert_matches(y, ref.softmax_forward(x), np.float64)
    assert lk.Softmax()(x.astype(np.float32)).dtype == np.float32
    assert lk.Softmax()(x.astype(np.float16)).dtype == np.float64
    assert lk.Softmax()(x.tolist()).dtype == np.float64


def test_backward_follows_the_last_forward_dtype(rng):
    s = lk.Softmax()
    s(rng.standard_normal((2, 3)))
    y32 = s(rng.standard_normal((2, 3)).astype(np.float32))
    dx = s.backward(np.ones((2, 3)))
    assert dx.dtype == np.float32
    np.testing.assert_allclose(dx, 0, atol=1e-7)
    assert y32.dtype == np.float32


def test_empty_batch(dtype):
    s = lk.Softmax()
    y = s(np.zeros((0, 10), dtype=dtype))
    assert y.shape == (0, 10) and y.dtype == dtype
    assert s.backward(np.zeros((0, 10), dtype=dtype)).shape == (0, 10)


def test_input_is_not_modified(rng):
    x = rng.standard_normal((4, 5))
    x.flags.writeable = False
    copy = x.copy()
    s = lk.Softmax()
    s(x)
    dy = np.ones_like(x)
    dy.flags.writeable = False
    s.backward(dy)
    np.testing.assert_array_equal(x, copy)


def test_errors():
    s = lk.Softmax()
    with pytest.raises(ValueError, match="Softmax.backward called before forward"):
        s.backward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"at least 1 dimension"):
        s(np.float64(3.0))
    with pytest.raises(ValueError, match=r"axis 2 is out of range for x of shape \(2, 3\)"):
        lk.Softmax(axis=2)(np.ones((2, 3)))
    with pytest.raises(TypeError, match="real numbers"):
        s(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="real numbers"):
        s(np.ones((2, 3), dtype=complex))
    with pytest.raises(TypeError, match="real numbers"):
        s(np.array([[1, None]], dtype=object))
    with pytest.raises(TypeError, match="axis must be an integer"):
        lk.Softmax(axis=1.5)
    s(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"expected dy of shape \(2, 3\).*got \(3, 2\)"):
        s.backward(np.ones((3, 2)))
    with pytest.raises(TypeError, match="real numbers"):
        s.backward(np.ones((2, 3), dtype=complex))
