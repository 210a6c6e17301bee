import numpy as np
import pytest

# The tolerances the issue fixes: the compiled layers against the float64 NumPy reference.
TOLERANCE = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name: reproducible, and different for each test."""
    seed = sum(map(ord, request.node.nodeid))
    return np.random.default_rng(seed)


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return np.dtype(request.param)


def assert_matches(got, ref, dtype):
    """``got`` has ``dtype`` and ref's shape and agrees with it within the dtype's tolerance,
    relative to the largest magnitude in ``ref`` (at least 1)."""
    dtype = np.dtype(dtype)
    assert isinstance(got, np.ndarray)
    assert got.dtype == dtype, f"dtype {got.dtype}, expected {dtype}"
    assert got.shape == ref.shape, f"shape {got.shape}, expected {ref.shape}"
    tol = TOLERANCE[dtype]
    scale = max(1.0, float(np.max(np.abs(ref), initial=0.0)))
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * scale)


def noncontiguous(a):
    """The same values as ``a`` in a strided, non-contiguous view."""
    big = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), dtype=a.dtype)
    big[..., ::2] = a
    view = big[..., ::2]
    assert not view.flags.c_contiguous or a.shape[-1] <= 1
    return view
