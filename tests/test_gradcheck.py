"""Float64 central finite differences against the analytic gradients of every layer and model."""

import layerkit as lk
import numpy as np
import pytest
from layerkit import reference as ref

TOL = 1e-6


def away_from_zero(rng, shape):
    """Values at least 0.1 from 0, so ReLU's kink is never straddled by the finite difference."""
    x = rng.uniform(0.1, 2.0, size=shape)
    return x * rng.choice([-1.0, 1.0], size=shape)


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda: lk.Dense(5, 4, dtype=np.float64, seed=1), (3, 5)),
        (lambda: lk.Dense(5, 4, bias=False, dtype=np.float64, seed=1), (3, 5)),
        (lambda: lk.Dense(5, 4, dtype=np.float32, seed=1), (3, 5)),  # checked via a float64 copy
        (lambda: lk.Softmax(), (3, 6)),
        (lambda: lk.Softmax(axis=0), (4, 3)),
        (lambda: lk.Softmax(axis=1), (2, 3, 4)),
        (lambda: lk.AvgPool2d(2), (2, 2, 4, 6)),
        (lambda: lk.AvgPool2d(3, stride=2, padding=1, ceil_mode=True), (1, 2, 6, 5)),
        (lambda: lk.AvgPool2d(3, 1, 1, count_include_pad=False), (2, 5, 5)),
        (lambda: lk.AvgPool2d((2, 3), stride=(1, 2), divisor_override=4), (1, 1, 5, 7)),
        (lambda: lk.ReLU(), (4, 5)),
        (lambda: lk.Sigmoid(), (4, 5)),
        (lambda: lk.Tanh(), (4, 5)),
        (lambda: lk.Flatten(), (2, 3, 4)),
    ],
)
def test_layer_gradients(rng, make, shape):
    assert lk.gradcheck(make(), away_from_zero(rng, shape)) < TOL


def test_float32_layer_is_left_unchanged(rng):
    d = lk.Dense(3, 2, seed=0)
    before = d.weight.copy()
    lk.gradcheck(d, rng.standard_normal((2, 3)))
    np.testing.assert_array_equal(d.weight, before)


def mlp(dtype=np.float64, softmax=True):
    layers = [
        lk.Dense(6, 8, dtype=dtype, seed=3),
        lk.ReLU(),
        lk.Dense(8, 4, dtype=dtype, seed=4),
    ]
    return lk.Sequential([*layers, lk.Softmax()] if softmax else layers)


def test_sequential_backward(rng):
    assert lk.gradcheck(mlp(), away_from_zero(rng, (5, 6))) < TOL
    conv_like = lk.Sequential(
        [
            lk.AvgPool2d(2, stride=1),
            lk.Flatten(),
            lk.Dense(2 * 3 * 3, 5, dtype=np.float64, seed=0),
            lk.Tanh(),
            lk.Dense(5, 3, dtype=np.float64, seed=1),
            lk.Softmax(),
        ]
    )
    assert lk.gradcheck(conv_like, rng.standard_normal((3, 2, 4, 4))) < TOL


def _numeric_loss_gradient(model, x, t, loss, eps=1e-6):
    grads = []
    for _, value, _ in model.parameters():
        g = np.empty(value.shape)
        for idx in np.ndindex(value.shape):
            saved = value[idx]
            value[idx] = saved + eps
            up = model.evaluate(x, t, loss=loss)["loss"]
            value[idx] = saved - eps
            down = model.evaluate(x, t, loss=loss)["loss"]
            value[idx] = saved
            g[idx] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.parametrize("targets", ["labels", "probabilities"])
def test_sequential_with_loss(rng, loss, softmax, targets):
    """Dense-ReLU-Dense(-Softmax) trained with each loss: the gradients that fit uses (including
    the fused softmax cross-entropy one) equal finite differences of the loss."""
    model = mlp(softmax=softmax)
    x = away_from_zero(rng, (7, 6))
    t = rng.integers(0, 4, size=7)
    if targets == "probabilities":
        t = ref.softmax_forward(rng.standard_normal((7, 4)))
    value = model.loss_and_gradients(x, t, loss=loss)
    assert value == pytest.approx(model.evaluate(x, t, loss=loss)["loss"], rel=1e-12)
    analytic = [grad.copy() for _, _, grad in model.parameters()]
    numeric = _numeric_loss_gradient(model, x, t, loss)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-8)


class _WrongBackward(lk.Layer):
    """y = x ** 2 with the derivative deliberately off by a factor of 2."""

    def forward(self, x):
        self.x = np.asarray(x, dtype=np.float64)
        return self.x**2

    def backward(self, dy):
        return dy * self.x


def test_gradcheck_catches_a_wrong_gradient(rng):
    assert lk.gradcheck(_WrongBackward(), rng.standard_normal((3, 4))) > 0.4


def test_gradcheck_rejects_other_objects():
    with pytest.raises(TypeError, match="Layer or a Sequential"):
        lk.gradcheck(lambda x: x, np.ones(3))
