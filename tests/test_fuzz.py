"""Property-based fuzzing: random shapes (0- and 1-sized axes included), both dtypes, strided,
reversed, Fortran-ordered and read-only inputs, every AvgPool2d option, and extreme values. Each
example matches layerkit.reference or raises a clear ValueError / TypeError, never crashes, and
leaves its input unchanged."""

import layerkit as lk
import numpy as np
import pytest
from conftest import assert_matches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from layerkit import reference as ref

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DTYPES = st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])
LAYOUTS = st.sampled_from(["c", "fortran", "strided", "reversed", "readonly"])


def moderate(dtype):
    return st.floats(-8, 8, allow_nan=False, width=32 if dtype == np.float32 else 64)


def extreme(dtype, huge=True):
    """Specials and edge values, mixed with ordinary ones."""
    tiny = np.finfo(dtype).smallest_subnormal
    big = 1e38 if dtype == np.float32 else 1e300
    values = [np.inf, -np.inf, np.nan, 0.0, -0.0, tiny, -tiny, 1.0, -2.5, 0.3]
    if huge:
        values += [big, -big]
    return st.sampled_from(values)


def arrays(data, dtype, shape, elements):
    return data.draw(hnp.arrays(dtype, shape, elements=elements))


def with_layout(a, kind):
    """The same values in another memory layout."""
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "strided":
        big = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), a.dtype) if a.ndim else a.copy()
        if a.ndim == 0:
            return big
        big[..., ::2] = a
        return big[..., ::2]
    if kind == "reversed":
        return np.flip(np.flip(a).copy())
    if kind == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    return a


def close(got, expected, dtype):
    """assert_matches where the values are ordinary; equal NaN / inf patterns everywhere."""
    assert got.dtype == dtype and got.shape == expected.shape
    expected = expected.astype(dtype)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(
        got[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)]
    )
    if finite.any():
        assert_matches(got[finite], expected[finite].astype(np.float64), dtype)


def unchanged(view, original):
    np.testing.assert_array_equal(view, original)


@SETTINGS
@given(data=st.data(), dtype=DTYPES, layout=LAYOUTS)
def test_dense(data, dtype, layout):
    n = data.draw(st.integers(0, 5))
    fin, fout = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
    lead = data.draw(st.sampled_from([(), (2,)]))
    x = arrays(data, dtype, (*lead, n, fin), moderate(dtype))
    dy = arrays(data, dtype, (*lead, n, fout), moderate(dtype))
    d = lk.Dense(fin, fout, bias=data.draw(st.booleans()), dtype=dtype, seed=0)
    xv, dyv = with_layout(x, layout), with_layout(dy, layout)
    assert_matches(d(xv), ref.dense_forward(x, d.weight, d.bias), dtype)
    dx, dW, db = ref.dense_backward(x, d.weight, dy)
    assert_matches(d.backward(dyv), dx, dtype)
    assert_matches(d.grad_weight, dW, dtype)
    if d.bias is not None:
        assert_matches(d.grad_bias, db, dtype)
    unchanged(xv, x)
    unchanged(dyv, dy)


@SETTINGS
@given(data=st.data(), dtype=DTYPES, layout=LAYOUTS)
def test_softmax(data, dtype, layout):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = arrays(data, dtype, shape, moderate(dtype))
    dy = arrays(data, dtype, shape, moderate(dtype))
    s = lk.Softmax(axis=axis)
    xv, dyv = with_layout(x, layout), with_layout(dy, layout)
    y = s(xv)
    dx = s.backward(dyv)
    assert y.shape == dx.shape == shape and y.dtype == dx.dtype == dtype
    if x.size:
        y_ref = ref.softmax_forward(x, axis)
        assert_matches(y, y_ref, dtype)
        assert_matches(dx, ref.softmax_backward(y_ref, dy, axis), dtype)
    unchanged(xv, x)
    unchanged(dyv, dy)


@SETTINGS
@given(data=st.data(), dtype=DTYPES, layout=LAYOUTS)
def test_avgpool2d(data, dtype, layout):
    kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    stride = data.draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (data.draw(st.integers(0, kh // 2)), data.draw(st.integers(0, kw // 2)))
    opts = dict(
        kernel_size=(kh, kw),
        stride=stride,
        padding=padding,
        ceil_mode=data.draw(st.booleans()),
        count_include_pad=data.draw(st.booleans()),
        divisor_override=data.draw(st.one_of(st.none(), st.integers(1, 5))),
    )
    lead = data.draw(st.sampled_from([(0, 2), (1, 1), (2, 3), (3,)]))
    H, W = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
    x = arrays(data, dtype, (*lead, H, W), moderate(dtype))
    xv = with_layout(x, layout)
    pool = lk.AvgPool2d(**opts)
    (sh, sw) = stride or (kh, kw)
    oh = ref.avgpool2d_output_size(H, kh, sh, padding[0], opts["ceil_mode"])
    ow = ref.avgpool2d_output_size(W, kw, sw, padding[1], opts["ceil_mode"])
    if oh < 1 or ow < 1:
        with pytest.raises(ValueError, match="too small"):
            pool(xv)
        return
    y = pool(xv)
    assert_matches(y, ref.avgpool2d_forward(x, **opts), dtype)
    dy = arrays(data, dtype, y.shape, moderate(dtype))
    dyv = with_layout(dy, layout)
    assert_matches(pool.backward(dyv), ref.avgpool2d_backward(x.shape, dy, **opts), dtype)
    unchanged(xv, x)
    unchanged(dyv, dy)


@SETTINGS
@given(data=st.data(), dtype=DTYPES, layout=LAYOUTS)
def test_flatten(data, dtype, layout):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
    x = arrays(data, dtype, shape, extreme(dtype))
    xv = with_layout(x, layout)
    f = lk.Flatten()
    if x.ndim < 2:
        with pytest.raises(ValueError, match="at least 2 dimensions"):
            f(xv)
        return
    y = f(xv)
    np.testing.assert_array_equal(y, x.reshape(x.shape[0], int(np.prod(x.shape[1:]))))
    dy = arrays(data, dtype, y.shape, moderate(dtype))
    np.testing.assert_array_equal(f.backward(dy), dy.reshape(x.shape))
    unchanged(xv, x)


ELEMENTWISE = {
    "relu": (lk.ReLU, ref.relu_forward, lambda x, y, dy: ref.relu_backward(x, dy)),
    "sigmoid": (lk.Sigmoid, ref.sigmoid_forward, lambda x, y, dy: ref.sigmoid_backward(y, dy)),
    "tanh": (lk.Tanh, ref.tanh_forward, lambda x, y, dy: ref.tanh_backward(y, dy)),
}


@SETTINGS
@given(data=st.data(), dtype=DTYPES, layout=LAYOUTS, name=st.sampled_from(sorted(ELEMENTWISE)))
def test_elementwise_with_extreme_values(data, dtype, layout, name):
    cls, fwd, bwd = ELEMENTWISE[name]
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6))
    x = arrays(data, dtype, shape, extreme(dtype))
    dy = arrays(data, dtype, shape, moderate(dtype))
    layer = cls()
    xv, dyv = with_layout(x, layout), with_layout(dy, layout)
    with np.errstate(all="ignore"):
        y_ref = fwd(x)
        dx_ref = bwd(x, y_ref, dy)
    close(layer(xv), y_ref, dtype)
    close(layer.backward(dyv), dx_ref, dtype)
    unchanged(xv, x)


@SETTINGS
@given(data=st.data(), dtype=DTYPES)
def test_softmax_with_extreme_values(data, dtype):
    """+inf or NaN in a row gives a NaN row; -inf entries get probability 0; otherwise finite."""
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=7))
    x = arrays(data, dtype, shape, extreme(dtype))
    y = lk.Softmax()(x)
    with np.errstate(all="ignore"):
        close(y, ref.softmax_forward(x), dtype)
    bad = np.isnan(x).any(axis=1) | np.isposinf(x).any(axis=1) | np.isneginf(x).all(axis=1)
    assert np.isnan(y[bad]).all()
    assert np.isfinite(y[~bad]).all()
    np.testing.assert_allclose(y[~bad].sum(axis=1), 1, rtol=1e-5)


@SETTINGS
@given(data=st.data(), dtype=DTYPES)
def test_pool_and_dense_with_extreme_values(data, dtype):
    """Infinities and NaN propagate as IEEE arithmetic says, whatever the order of the sums."""
    x = arrays(data, dtype, (2, 2, 4, 5), extreme(dtype, huge=False))
    with np.errstate(all="ignore"):
        close(lk.AvgPool2d(2, 1, 1)(x), ref.avgpool2d_forward(x, 2, 1, 1), dtype)
        d = lk.Dense(5, 3, dtype=dtype, seed=1)
        close(d(x), ref.dense_forward(x, d.weight, d.bias), dtype)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), dtype=DTYPES, loss=st.sampled_from(["cross_entropy", "mse"]))
def test_sequential(data, dtype, loss):
    n = data.draw(st.integers(1, 40))
    fin, hidden, k = (
        data.draw(st.integers(1, 6)),
        data.draw(st.integers(1, 8)),
        data.draw(st.integers(2, 5)),
    )
    X = arrays(data, dtype, (n, fin), moderate(dtype))
    y = np.asarray(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    softmax = data.draw(st.booleans())
    layers = [
        lk.Dense(fin, hidden, dtype=dtype, seed=0),
        lk.Tanh(),
        lk.Dense(hidden, k, dtype=dtype, seed=1),
    ]
    model = lk.Sequential([*layers, lk.Softmax()] if softmax else layers)
    d0, _, d2 = layers
    expected = ref.dense_forward(
        ref.tanh_forward(ref.dense_forward(X, d0.weight, d0.bias)), d2.weight, d2.bias
    )
    if softmax:
        expected = ref.softmax_forward(expected)
    assert_matches(model.predict(X, batch_size=data.draw(st.integers(1, 50))), expected, dtype)
    hist = model.fit(
        X, y, epochs=2, batch_size=data.draw(st.integers(1, n + 3)), loss=loss,
        optimizer=data.draw(st.sampled_from([lk.SGD(lr=0.01, momentum=0.5), lk.Adam()])),
        seed=data.draw(st.integers(0, 10)), verbose=0,
    )  # fmt: skip
    assert len(hist.history["loss"]) == 2
    assert np.isfinite(hist.history["loss"]).all()
    assert np.isfinite(model.predict(X)).all()
