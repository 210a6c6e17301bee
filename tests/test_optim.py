import layerkit as lk
import numpy as np
import pytest

GRADS = [np.array([0.5, -1.0, 2.0]), np.array([0.1, 0.3, -0.2]), np.array([-0.4, 0.0, 1.5])]
P0 = np.array([1.0, -2.0, 0.5])


def run(opt, dtype=np.float64):
    p = P0.astype(dtype)
    g = np.zeros_like(p)
    for gi in GRADS:
        g[...] = gi
        opt.step([(p, g)])
    return p


def sgd_by_hand(lr, momentum, nesterov, wd):
    """torch.optim.SGD's update (dampening 0), one scalar at a time."""
    out = []
    for j in range(3):
        p, buf = float(P0[j]), None
        for t, gs in enumerate(GRADS):
            d = gs[j] + wd * p
            if momentum:
                buf = d if t == 0 else momentum * buf + d
                d = d + momentum * buf if nesterov else buf
            p -= lr * d
        out.append(p)
    return np.array(out)


def adam_by_hand(lr, b1, b2, eps, wd):
    """Adam as in its paper, with torch's placement of eps: m_hat / (sqrt(v_hat) + eps)."""
    out = []
    for j in range(3):
        p, m, v = float(P0[j]), 0.0, 0.0
        for t, gs in enumerate(GRADS, start=1):
            d = gs[j] + wd * p
            m = b1 * m + (1 - b1) * d
            v = b2 * v + (1 - b2) * d * d
            m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
            p -= lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(p)
    return np.array(out)


SGD_CASES = [
    dict(lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0),
    dict(lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.0),
    dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.0),
    dict(lr=0.1, momentum=0.5, nesterov=False, weight_decay=0.01),
    dict(lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.1),
]
ADAM_CASES = [
    dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
    dict(lr=0.1, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.0),
    dict(lr=0.01, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.05),
]


@pytest.mark.parametrize("kw", SGD_CASES)
def test_sgd_update_equations(kw):
    expected = sgd_by_hand(kw["lr"], kw["momentum"], kw["nesterov"], kw["weight_decay"])
    np.testing.assert_allclose(run(lk.SGD(**kw)), expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(run(lk.SGD(**kw), np.float32), expected, rtol=1e-6)


@pytest.mark.parametrize("kw", ADAM_CASES)
def test_adam_update_equations(kw):
    expected = adam_by_hand(kw["lr"], *kw["betas"], kw["eps"], kw["weight_decay"])
    np.testing.assert_allclose(run(lk.Adam(**kw)), expected, rtol=1e-12)
    np.testing.assert_allclose(run(lk.Adam(**kw), np.float32), expected, rtol=1e-5)


@pytest.mark.parametrize(
    ("ours", "theirs", "kw"),
    [("SGD", "SGD", kw) for kw in SGD_CASES] + [("Adam", "Adam", kw) for kw in ADAM_CASES],
)
def test_same_trajectory_as_pytorch(ours, theirs, kw):
    torch = pytest.importorskip("torch")
    p = torch.tensor(P0, requires_grad=True)
    opt = getattr(torch.optim, theirs)([p], **kw)
    for g in GRADS:
        p.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(run(getattr(lk, ours)(**kw)), p.detach().numpy(), rtol=1e-12)


def test_optimizer_updates_a_layer_in_place(rng):
    d = lk.Dense(3, 2, dtype=np.float64, seed=0)
    w0 = d.weight.copy()
    d(rng.standard_normal((4, 3)))
    d.backward(rng.standard_normal((4, 2)))
    lk.SGD(lr=0.5).step([(v, g) for _, v, g in d.parameters()])
    np.testing.assert_allclose(d.weight, w0 - 0.5 * d.grad_weight, rtol=1e-14)


def test_state_is_per_parameter_and_checked():
    opt = lk.SGD(lr=0.1, momentum=0.9)
    a, b = np.ones(2), np.ones(3)
    opt.step([(a, np.ones(2)), (b, np.ones(3))])
    assert [s["momentum_buffer"].shape for s in opt.state] == [(2,), (3,)]
    with pytest.raises(ValueError, match="got 1 parameters.*state for 2"):
        opt.step([(a, np.ones(2))])


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: lk.SGD(lr=-0.1), "lr must be"),
        (lambda: lk.SGD(lr=float("nan")), "lr must be"),
        (lambda: lk.SGD(momentum=-1), "momentum must be"),
        (lambda: lk.SGD(weight_decay=-1), "weight_decay must be"),
        (lambda: lk.SGD(nesterov=True), "nesterov=True needs a positive momentum"),
        (lambda: lk.Adam(lr=-1), "lr must be"),
        (lambda: lk.Adam(betas=(1.0, 0.999)), r"betas\[0\] must be"),
        (lambda: lk.Adam(betas=(0.9, -0.1)), r"betas\[1\] must be"),
        (lambda: lk.Adam(betas=0.9), "betas must be a pair"),
        (lambda: lk.Adam(eps=-1e-8), "eps must be"),
    ],
)
def test_impossible_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_repr():
    assert repr(lk.SGD(lr=0.1)) == "SGD(lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0)"
    assert "betas=[0.9, 0.999]" in repr(lk.Adam())
