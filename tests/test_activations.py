import layerkit as lk
import numpy as np
import pytest
from conftest import assert_matches, noncontiguous
from layerkit import reference as ref

# (layer, forward reference, backward reference from (x, y, dy))
ACTIVATIONS = {
    "relu": (lk.ReLU, ref.relu_forward, lambda x, y, dy: ref.relu_backward(x, dy)),
    "sigmoid": (lk.Sigmoid, ref.sigmoid_forward, lambda x, y, dy: ref.sigmoid_backward(y, dy)),
    "tanh": (lk.Tanh, ref.tanh_forward, lambda x, y, dy: ref.tanh_backward(y, dy)),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(1, 1), (7,), (5, 13), (2, 3, 4, 5)])
def test_forward_and_backward_match_reference(rng, dtype, name, shape):
    cls, fwd, bwd = ACTIVATIONS[name]
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    layer = cls()
    y = layer(x)
    y_ref = fwd(x)
    assert_matches(y, y_ref, dtype)
    assert_matches(layer.backward(dy), bwd(x, y_ref, dy), dtype)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_extreme_inputs_stay_finite(dtype, name):
    cls, fwd, _ = ACTIVATIONS[name]
    x = np.array([-1e30, -1000.0, -50.0, 0.0, 50.0, 1000.0, 1e30]).astype(dtype)
    y = cls()(x)
    assert np.all(np.isfinite(y))
    assert_matches(y, fwd(x), dtype)


def test_relu_keeps_nan():
    y = lk.ReLU()(np.array([np.nan, -1.0, 2.0]))
    assert np.isnan(y[0]) and y[1] == 0 and y[2] == 2


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_noncontiguous_and_empty(rng, dtype, name):
    cls = ACTIVATIONS[name][0]
    x = rng.standard_normal((4, 6)).astype(dtype)
    a, b = cls(), cls()
    np.testing.assert_array_equal(a(noncontiguous(x)), b(x))
    dy = rng.standard_normal((4, 6)).astype(dtype)
    np.testing.assert_array_equal(a.backward(noncontiguous(dy)), b.backward(dy))
    e = cls()
    assert e(np.zeros((0, 3), dtype=dtype)).shape == (0, 3)
    assert e.backward(np.zeros((0, 3), dtype=dtype)).dtype == dtype


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_errors(name):
    layer = ACTIVATIONS[name][0]()
    cls_name = type(layer).__name__
    with pytest.raises(ValueError, match=f"{cls_name}.backward called before forward"):
        layer.backward(np.ones(3))
    with pytest.raises(TypeError, match="real numbers"):
        layer(np.array(["x"]))
    layer(np.ones((2, 3)))
    with pytest.raises(ValueError, match=rf"{cls_name}.backward: expected dy of shape \(2, 3\)"):
        layer.backward(np.ones(6))


def test_flatten_is_a_view(rng, dtype):
    f = lk.Flatten()
    x = rng.standard_normal((3, 2, 4, 5)).astype(dtype)
    y = f(x)
    assert y.shape == (3, 40) and y.dtype == dtype
    assert np.shares_memory(x, y)
    np.testing.assert_array_equal(y, x.reshape(3, -1))
    dy = rng.standard_normal((3, 40)).astype(dtype)
    dx = f.backward(dy)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dx.reshape(3, -1), dy)


def test_flatten_edge_cases():
    f = lk.Flatten()
    assert f(np.zeros((0, 2, 3))).shape == (0, 6)
    assert f.backward(np.zeros((0, 6))).shape == (0, 2, 3)
    assert f(np.zeros((4, 1))).shape == (4, 1)
    strided = np.arange(48.0).reshape(4, 12)[:, ::2].reshape(4, 2, 3)
    np.testing.assert_array_equal(f(strided), strided.reshape(4, 6))


def test_flatten_errors():
    f = lk.Flatten()
    with pytest.raises(ValueError, match="Flatten.backward called before forward"):
        f.backward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got \(5,\)"):
        f(np.ones(5))
    with pytest.raises(TypeError, match="real numbers"):
        f(np.array([["a", "b"]]))
    f(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"expected dy of shape \(2, 12\)"):
        f.backward(np.ones((2, 3, 4)))
