"""The fused losses against the NumPy reference, on the vectorized and the portable kernels."""

import contextlib

import layerkit as lk
import numpy as np
import pytest
from conftest import TOLERANCE, assert_matches
from layerkit import reference as ref

KERNELS = {"best": contextlib.nullcontext, "portable": lk.diagnostics.portable_kernels}


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (32, 10), (7, 8), (4, 17), (3, 1000)])
def test_cross_entropy_with_labels(rng, dtype, shape, kernels):
    z = (3 * rng.standard_normal(shape)).astype(dtype)
    labels = rng.integers(0, shape[1], shape[0])
    with KERNELS[kernels]():
        value, grad = lk.losses.cross_entropy(z, labels)
    ref_value, ref_grad = ref.cross_entropy(z, labels)
    assert value == pytest.approx(ref_value, rel=TOLERANCE[dtype])
    assert_matches(grad, ref_grad, dtype)


@pytest.mark.parametrize("kernels", KERNELS)
def test_cross_entropy_with_probabilities(rng, dtype, kernels):
    z = rng.standard_normal((9, 13)).astype(dtype)
    t = rng.random((9, 13))
    t[:, ::3] = 0  # zero targets contribute nothing
    t = (t / t.sum(axis=1, keepdims=True)).astype(dtype)
    with KERNELS[kernels]():
        value, grad = lk.losses.cross_entropy(z, t)
    ref_value, ref_grad = ref.cross_entropy(z, t)
    assert value == pytest.approx(ref_value, rel=TOLERANCE[dtype])
    assert_matches(grad, ref_grad, dtype)


@pytest.mark.parametrize("kernels", KERNELS)
def test_cross_entropy_is_stable_for_huge_logits(dtype, kernels):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4 + 1, -1e4 + 2]], dtype=dtype)
    labels = np.array([1, 2])
    with KERNELS[kernels]():
        value, grad = lk.losses.cross_entropy(z, labels)
    ref_value, ref_grad = ref.cross_entropy(z, labels)
    assert np.isfinite(value) and value == pytest.approx(ref_value, rel=TOLERANCE[dtype])
    assert_matches(grad, ref_grad, dtype)


def test_mse(rng, dtype):
    y = rng.standard_normal((6, 4)).astype(dtype)
    t = rng.standard_normal((6, 4)).astype(dtype)
    value, grad = lk.losses.mse(y, t)
    ref_value, ref_grad = ref.mse(y, t)
    assert value == pytest.approx(ref_value, rel=TOLERANCE[dtype])
    assert_matches(grad, ref_grad, dtype)
