import itertools

import layerkit as lk
import numpy as np
import pytest
from conftest import assert_matches, noncontiguous
from layerkit import reference as ref

KERNELS = [1, 2, 3, (2, 3)]
STRIDES = [None, 1, 2, (1, 2)]
PADDINGS = [0, 1, (1, 0)]


def _valid(kernel, padding):
    k = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    p = padding if isinstance(padding, tuple) else (padding, padding)
    return all(2 * pi <= ki for pi, ki in zip(p, k))


COMBOS = [
    (k, s, p, ceil, cip, div)
    for k, s, p, ceil, cip, div in itertools.product(
        KERNELS, STRIDES, PADDINGS, [False, True], [True, False], [None, 3]
    )
    if _valid(k, p)
]


def _options(k, s, p, ceil, cip, div):
    return dict(
        kernel_size=k,
        stride=s,
        padding=p,
        ceil_mode=ceil,
        count_include_pad=cip,
        divisor_override=div,
    )


@pytest.mark.parametrize(("k", "s", "p", "ceil", "cip", "div"), COMBOS)
@pytest.mark.parametrize("shape", [(2, 3, 7, 6), (3, 5, 5)], ids=["nchw", "chw"])
def test_every_option_matches_reference(rng, dtype, shape, k, s, p, ceil, cip, div):
    opts = _options(k, s, p, ceil, cip, div)
    x = rng.standard_normal(shape).astype(dtype)
    pool = lk.AvgPool2d(**opts)
    y_ref = ref.avgpool2d_forward(x, **opts)
    assert_matches(pool(x), y_ref, dtype)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    assert_matches(pool.backward(dy), ref.avgpool2d_backward(x.shape, dy, **opts), dtype)


def test_2x2_stride_2_backward_is_a_quarter_of_the_output_gradient(rng, dtype):
    x = rng.standard_normal((2, 3, 8, 6)).astype(dtype)
    dy = rng.standard_normal((2, 3, 4, 3)).astype(dtype)
    pool = lk.AvgPool2d(2)
    y = pool(x)
    expected = x.reshape(2, 3, 4, 2, 3, 2).mean(axis=(3, 5))
    assert_matches(y, expected.astype(np.float64), dtype)
    dx = pool.backward(dy)
    i, j = np.meshgrid(np.arange(8), np.arange(6), indexing="ij")
    np.testing.assert_array_equal(dx, dy[:, :, i // 2, j // 2] / 4)


def test_uncovered_inputs_get_zero_gradient(dtype):
    pool = lk.AvgPool2d(2)  # a 5x5 input leaves its last row and column uncovered
    pool(np.ones((1, 1, 5, 5), dtype=dtype))
    dx = pool.backward(np.ones((1, 1, 2, 2), dtype=dtype))
    np.testing.assert_array_equal(dx[0, 0, 4, :], 0)
    np.testing.assert_array_equal(dx[0, 0, :, 4], 0)
    np.testing.assert_array_equal(dx[0, 0, :4, :4], 0.25)


def test_overlapping_windows_add(dtype):
    pool = lk.AvgPool2d(kernel_size=3, stride=1)
    pool(np.zeros((1, 1, 4, 4), dtype=dtype))
    dx = pool.backward(np.ones((1, 1, 2, 2), dtype=dtype))
    counts = np.array([[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]]) / 9
    np.testing.assert_allclose(dx[0, 0], counts, rtol=1e-6)


@pytest.mark.parametrize(
    ("size", "k", "s", "p", "ceil", "expected"),
    [
        (7, 2, 2, 0, False, 3),
        (7, 2, 2, 0, True, 4),
        (6, 2, 2, 1, True, 4),
        (5, 3, 2, 1, True, 3),  # the extra window would start in the right padding: dropped
        (1, 2, 2, 0, True, 1),
        (1, 2, 2, 0, False, 0),
    ],
)
def test_output_size(size, k, s, p, ceil, expected):
    assert ref.avgpool2d_output_size(size, k, s, p, ceil) == expected
    pool = lk.AvgPool2d(k, s, p, ceil_mode=ceil)
    if expected < 1:
        with pytest.raises(ValueError, match="too small"):
            pool(np.ones((1, size, size)))
    else:
        assert pool(np.ones((1, size, size))).shape == (1, expected, expected)


def test_noncontiguous_input_matches_contiguous(rng, dtype):
    x = rng.standard_normal((2, 2, 6, 6)).astype(dtype)
    a, b = lk.AvgPool2d(3, 2, 1), lk.AvgPool2d(3, 2, 1)
    y = b(x)
    np.testing.assert_array_equal(a(noncontiguous(x)), y)
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_array_equal(a.backward(noncontiguous(dy)), b.backward(dy))
    np.testing.assert_array_equal(a(np.asfortranarray(x)), y)


def test_other_input_dtypes_compute_in_float64(rng):
    x = rng.integers(0, 10, size=(1, 2, 4, 4))
    y = lk.AvgPool2d(2)(x)
    assert y.dtype == np.float64
    assert_matches(y, ref.avgpool2d_forward(x, 2), np.float64)


def test_empty_batch(dtype):
    pool = lk.AvgPool2d(2)
    y = pool(np.zeros((0, 3, 4, 4), dtype=dtype))
    assert y.shape == (0, 3, 2, 2) and y.dtype == dtype
    assert pool.backward(np.zeros((0, 3, 2, 2), dtype=dtype)).shape == (0, 3, 4, 4)


def test_config_round_trip():
    pool = lk.AvgPool2d((2, 3), stride=1, padding=(1, 0), ceil_mode=True, divisor_override=5)
    again = lk.AvgPool2d.from_config(pool.get_config())
    assert again.get_config() == pool.get_config()
    assert again.kernel_size == (2, 3) and again.stride == (1, 1) and again.padding == (1, 0)
    assert "divisor_override=5" in repr(pool)


def test_shape_errors():
    pool = lk.AvgPool2d(2)
    with pytest.raises(ValueError, match="AvgPool2d.backward called before forward"):
        pool.backward(np.ones((1, 1, 1, 1)))
    with pytest.raises(
        ValueError, match=r"expected x of shape \(N, C, H, W\) or \(C, H, W\), got \(4, 4\)"
    ):
        pool(np.ones((4, 4)))
    with pytest.raises(ValueError, match=r"got \(1, 1, 1, 4, 4\)"):
        pool(np.ones((1, 1, 1, 4, 4)))
    with pytest.raises(ValueError, match="non-empty"):
        pool(np.ones((1, 1, 0, 4)))
    with pytest.raises(ValueError, match="too small"):
        pool(np.ones((1, 1, 1, 4)))
    with pytest.raises(TypeError, match="real numbers"):
        pool(np.ones((1, 1, 4, 4), dtype=complex))
    pool(np.ones((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"expected dy of shape \(1, 1, 2, 2\)"):
        pool.backward(np.ones((1, 1, 4, 4)))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"kernel_size": 0}, ValueError, "kernel_size must be at least 1"),
        ({"kernel_size": (2, 2, 2)}, ValueError, "int or a pair"),
        ({"kernel_size": 2.0}, TypeError, "kernel_size must be an integer"),
        ({"kernel_size": 2, "stride": 0}, ValueError, "stride must be at least 1"),
        ({"kernel_size": 2, "padding": -1}, ValueError, "padding must be at least 0"),
        ({"kernel_size": 2, "padding": 2}, ValueError, "at most half the kernel size"),
        ({"kernel_size": 3, "padding": (1, 2)}, ValueError, "at most half the kernel size"),
        (
            {"kernel_size": 2, "divisor_override": 0},
            ValueError,
            "divisor_override must be at least 1",
        ),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        lk.AvgPool2d(**kwargs)


@pytest.mark.parametrize(("k", "s", "p", "ceil", "cip", "div"), COMBOS[::5])
def test_matches_pytorch(rng, k, s, p, ceil, cip, div):
    torch = pytest.importorskip("torch")
    opts = _options(k, s, p, ceil, cip, div)
    x = rng.standard_normal((2, 3, 7, 6))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.AvgPool2d(**opts)(xt)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(dy))
    pool = lk.AvgPool2d(**opts)
    assert_matches(pool(x), yt.detach().numpy(), np.float64)
    assert_matches(pool.backward(dy), xt.grad.numpy(), np.float64)
