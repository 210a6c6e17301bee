"""The NumPy oracle checked on its own: its backward functions are finite differences of its
forward functions, and a few values are worked out by hand."""

import numpy as np
import pytest
from layerkit import reference as ref


def numeric_vjp(f, x, dy, eps=1e-6):
    """d/dx sum(dy * f(x)), by central differences."""
    g = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        saved = x[idx]
        x[idx] = saved + eps
        up = np.sum(dy * f(x))
        x[idx] = saved - eps
        down = np.sum(dy * f(x))
        x[idx] = saved
        g[idx] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax(rng, axis):
    x = rng.standard_normal((3, 4, 5))
    dy = rng.standard_normal(x.shape)
    y = ref.softmax_forward(x, axis)
    got = ref.softmax_backward(y, dy, axis)
    np.testing.assert_allclose(
        got, numeric_vjp(lambda v: ref.softmax_forward(v, axis), x, dy), atol=1e-8
    )
    np.testing.assert_allclose(ref.softmax_forward([[0.0, np.log(3.0)]]), [[0.25, 0.75]])


def test_dense(rng):
    x, W, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)
    dy = rng.standard_normal((4, 2))
    dx, dW, db = ref.dense_backward(x, W, dy)
    np.testing.assert_allclose(
        dx, numeric_vjp(lambda v: ref.dense_forward(v, W, b), x, dy), atol=1e-8
    )
    np.testing.assert_allclose(
        dW, numeric_vjp(lambda v: ref.dense_forward(x, v, b), W, dy), atol=1e-8
    )
    np.testing.assert_allclose(
        db, numeric_vjp(lambda v: ref.dense_forward(x, W, v), b, dy), atol=1e-8
    )
    # w_ij joins input i to output j
    assert ref.dense_forward([[1.0, 0.0]], [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).tolist() == [
        [1, 2, 3]
    ]


@pytest.mark.parametrize(
    "opts",
    [
        {"kernel_size": 2},
        {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
        {"kernel_size": 3, "stride": 1, "padding": 1, "count_include_pad": False},
        {"kernel_size": (2, 3), "stride": (2, 1), "divisor_override": 5},
    ],
)
def test_avgpool2d(rng, opts):
    x = rng.standard_normal((1, 2, 5, 6))
    y = ref.avgpool2d_forward(x, **opts)
    dy = rng.standard_normal(y.shape)
    got = ref.avgpool2d_backward(x.shape, dy, **opts)
    np.testing.assert_allclose(
        got, numeric_vjp(lambda v: ref.avgpool2d_forward(v, **opts), x, dy), atol=1e-8
    )


def test_avgpool2d_by_hand():
    x = np.arange(16.0).reshape(1, 4, 4)
    np.testing.assert_allclose(ref.avgpool2d_forward(x, 2), [[[2.5, 4.5], [10.5, 12.5]]])
    # padding 1 around a 2x2 input, 2x2 windows with stride 2: each window holds one input value
    x = np.array([[[4.0, 8.0], [12.0, 16.0]]])
    np.testing.assert_allclose(ref.avgpool2d_forward(x, 2, padding=1), [[[1, 2], [3, 4]]])
    np.testing.assert_allclose(
        ref.avgpool2d_forward(x, 2, padding=1, count_include_pad=False), [[[4, 8], [12, 16]]]
    )


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
def test_activations(rng, name):
    fwd = getattr(ref, f"{name}_forward")
    bwd = getattr(ref, f"{name}_backward")
    x = rng.uniform(0.1, 2, size=(3, 4)) * rng.choice([-1, 1], size=(3, 4))
    dy = rng.standard_normal(x.shape)
    got = bwd(x, dy) if name == "relu" else bwd(fwd(x), dy)
    np.testing.assert_allclose(got, numeric_vjp(fwd, x, dy), atol=1e-8)
