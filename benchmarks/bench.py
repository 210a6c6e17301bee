"""layerkit against NumPy-from-scratch and PyTorch, measured side by side in one run.

    python benchmarks/bench.py                 # the full run quoted in README.md
    python benchmarks/bench.py --smoke         # a few tiny cases, to check that it runs

Every case is timed for each library in turn, interleaved, and reported as the median of
--repeat samples (each sample loops long enough to last a few milliseconds). Ratios above 1 mean
layerkit is faster. PyTorch columns are left out, with a note, when torch is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time

import layerkit as lk
import numpy as np

try:
    import torch
except ImportError:
    torch = None

try:
    from threadpoolctl import threadpool_limits
except ImportError:
    threadpool_limits = None


# ---------------------------------------------------------------------------- timing
def measure(fn, repeat, min_time=10e-3):
    """Median seconds per call of ``fn`` over ``repeat`` samples."""
    fn()  # warm up: first-call allocations, lazy initialisation
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time or number >= 1 << 20:
            break
        number *= 2
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return statistics.median(samples)


# NumPy's OpenBLAS and PyTorch's OpenMP keep their idle threads spinning for a while after each
# call, and those threads take the cores from whoever runs next. Each library is measured only
# after the others' threads have gone quiet; the "alternating" case measures the mix on purpose.
SETTLE = 0.12


def measure_all(fns, repeat):
    """Times each of ``fns`` (name -> callable), interleaving samples so drift hits all alike."""
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            if fn is not None:
                time.sleep(SETTLE)
                times[name].append(measure(fn, 1))
    return {name: statistics.median(t) if t else None for name, t in times.items()}


@contextlib.contextmanager
def threads(n):
    """n threads for layerkit, NumPy's BLAS and PyTorch alike."""
    saved_torch = torch.get_num_threads() if torch else None
    limiter = threadpool_limits(limits=n) if threadpool_limits else contextlib.nullcontext()
    with limiter, lk.threads(n) if hasattr(lk, "threads") else contextlib.nullcontext():
        if torch:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            if torch:
                torch.set_num_threads(saved_torch)


# ----------------------------------------------------------------------------- cases
def dense_case(n, fin, fout, dtype, rng):
    x = rng.standard_normal((n, fin)).astype(dtype)
    dy = rng.standard_normal((n, fout)).astype(dtype)
    layer = lk.Dense(fin, fout, dtype=dtype, seed=0)
    W = layer.weight.copy()
    b = layer.bias.copy()

    def ours():
        layer.forward(x)
        layer.backward(dy)

    def numpy():
        _ = x @ W + b
        _ = x.T @ dy
        _ = dy.sum(axis=0)
        _ = dy @ W.T

    fns = {"layerkit": ours, "numpy": numpy, "torch": None}
    if torch:
        tx = torch.from_numpy(x)
        tdy = torch.from_numpy(dy)
        lin = torch.nn.Linear(fin, fout).to(getattr(torch, np.dtype(dtype).name))

        def pytorch():
            lin.zero_grad(set_to_none=True)
            tx.requires_grad_(True)
            tx.grad = None
            lin(tx).backward(tdy)

        fns["torch"] = pytorch
    return fns, 3 * 2.0 * n * fin * fout


def softmax_case(n, k, dtype, rng):
    x = (3 * rng.standard_normal((n, k))).astype(dtype)
    dy = rng.standard_normal((n, k)).astype(dtype)
    layer = lk.Softmax()

    def ours():
        layer.forward(x)
        layer.backward(dy)

    def numpy():
        e = np.exp(x - x.max(axis=1, keepdims=True))
        y = e / e.sum(axis=1, keepdims=True)
        _ = y * (dy - (dy * y).sum(axis=1, keepdims=True))

    fns = {"layerkit": ours, "numpy": numpy, "torch": None}
    if torch:
        tx = torch.from_numpy(x)
        tdy = torch.from_numpy(dy)

        def pytorch():
            tx.requires_grad_(True)
            tx.grad = None
            torch.softmax(tx, dim=1).backward(tdy)

        fns["torch"] = pytorch
    # bytes: read x, write y, read y and dy, write dx
    return fns, 5.0 * x.nbytes


def pool_case(shape, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    n, c, h, w = shape
    dy = rng.standard_normal((n, c, h // 2, w // 2)).astype(dtype)
    layer = lk.AvgPool2d(2)

    def ours():
        layer.forward(x)
        layer.backward(dy)

    def numpy():
        _ = x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
        g = np.broadcast_to((dy / 4)[:, :, :, None, :, None], (n, c, h // 2, 2, w // 2, 2))
        _ = g.reshape(n, c, h, w).copy()

    fns = {"layerkit": ours, "numpy": numpy, "torch": None}
    if torch:
        tx = torch.from_numpy(x)
        tdy = torch.from_numpy(dy)
        pool = torch.nn.AvgPool2d(2)

        def pytorch():
            tx.requires_grad_(True)
            tx.grad = None
            pool(tx).backward(tdy)

        fns["torch"] = pytorch
    # read x, write y, read dy, write dx
    return fns, 2.0 * x.nbytes + 2.0 * dy.nbytes


def call_overhead_case(dtype, rng):
    x = rng.standard_normal((1, 4)).astype(dtype)
    relu = lk.ReLU()
    fns = {"layerkit": lambda: relu(x), "numpy": lambda: np.maximum(x, 0), "torch": None}
    if torch:
        tx = torch.from_numpy(x)
        fns["torch"] = lambda: torch.relu(tx)
    return fns, None


def alternating_case(rng):
    """A NumPy matmul and a layerkit Dense forward in one loop, against each run on its own."""
    x = rng.standard_normal((256, 784)).astype(np.float32)
    W = rng.standard_normal((784, 256)).astype(np.float32)
    layer = lk.Dense(784, 256, seed=0)

    def both():
        _ = x @ W
        layer.forward(x)

    return {"numpy": lambda: x @ W, "layerkit": lambda: layer.forward(x), "alternating": both}


def alternating_split(rng, calls=400):
    """Median time of each library's call inside the alternating loop: which of the two slows."""
    fns = alternating_case(rng)
    numpy, layerkit = fns["numpy"], fns["layerkit"]
    t_np, t_lk = [], []
    for i in range(calls + 20):
        t0 = time.perf_counter()
        numpy()
        t1 = time.perf_counter()
        layerkit()
        t2 = time.perf_counter()
        if i >= 20:  # warmed up
            t_np.append(t1 - t0)
            t_lk.append(t2 - t1)
    return statistics.median(t_np), statistics.median(t_lk)


def _alternate_child(threads_n, smoke):
    """The in-loop split in a process whose NumPy BLAS threads sleep as soon as they are idle."""
    with threads(threads_n):
        print(*alternating_split(np.random.default_rng(0), 20 if smoke else 400))
    return 0


def _alternating_without_spin(threads_n, smoke):
    import subprocess

    env = dict(os.environ, OPENBLAS_THREAD_TIMEOUT="4")  # OpenBLAS's shortest idle spin
    cmd = [sys.executable, os.path.abspath(__file__), "--alternate-child", str(threads_n)]
    if smoke:
        cmd.append("--smoke")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return [float(v) for v in out.split()]


def copy_bandwidth(repeat):
    """GB/s of a large np.copyto (bytes read plus bytes written)."""
    src = np.ones(64 * 1024 * 1024 // 8)
    dst = np.empty_like(src)
    return 2 * src.nbytes / measure(lambda: np.copyto(dst, src), repeat) / 1e9


# -------------------------------------------------------------------------- training
def digits_data():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.int64)


def numpy_mlp_epoch(X, y, params, batch, lr, momentum, bufs, rng, pool):
    """A NumPy-from-scratch epoch: optional 2x2 average pooling, Dense-ReLU-Dense, softmax
    cross-entropy, SGD with momentum."""
    W1, b1, W2, b2 = params
    n = len(X)
    order = rng.permutation(n)
    for i in range(0, n, batch):
        idx = order[i : i + batch]
        xb = X[idx]
        if pool:
            m, c, h, w = xb.shape
            xb = xb.reshape(m, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
        xb = xb.reshape(len(idx), -1)
        h1 = xb @ W1 + b1
        a1 = np.maximum(h1, 0)
        z = a1 @ W2 + b2
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        p[np.arange(len(idx)), y[idx]] -= 1
        dz = p / len(idx)
        grads = [None] * 4
        grads[2] = a1.T @ dz
        grads[3] = dz.sum(axis=0)
        da1 = dz @ W2.T
        dh1 = da1 * (h1 > 0)
        grads[0] = xb.T @ dh1
        grads[1] = dh1.sum(axis=0)
        for prm, g, buf in zip(params, grads, bufs):
            buf *= momentum
            buf += g
            prm -= lr * buf


def training_cases(smoke, rng):
    cases = []
    X, y = digits_data()
    if smoke:
        X, y = X[:256], y[:256]
    cases.append(("digits: pool-16-64-10, batch 32", X, y, 32, True, 16, 64))
    n = 2048 if smoke else 60000
    Xc = rng.standard_normal((n, 784), dtype=np.float32)  # no float64 temporary
    yc = rng.integers(0, 10, n)
    cases.append((f"{n}x784: 784-256-10, batch 128", Xc, yc, 128, False, 784, 256))
    return cases


def train_fns(X, y, batch, pool, fin, hidden, only=None):
    layers = [lk.AvgPool2d(2), lk.Flatten()] if pool else []
    model = lk.Sequential(
        [*layers, lk.Dense(fin, hidden, seed=0), lk.ReLU(), lk.Dense(hidden, 10, seed=1)]
    )
    opt = lk.SGD(lr=0.01, momentum=0.9)
    fns = {
        "layerkit": lambda: model.fit(X, y, epochs=1, batch_size=batch, optimizer=opt, verbose=0)
    }

    rng = np.random.default_rng(0)
    params = [
        rng.uniform(-0.1, 0.1, (fin, hidden)).astype(np.float32),
        np.zeros(hidden, np.float32),
        rng.uniform(-0.1, 0.1, (hidden, 10)).astype(np.float32),
        np.zeros(10, np.float32),
    ]
    bufs = [np.zeros_like(p) for p in params]
    fns["numpy"] = lambda: numpy_mlp_epoch(X, y, params, batch, 0.01, 0.9, bufs, rng, pool)

    fns["torch"] = None
    if torch and only in (None, "torch"):
        nn = torch.nn
        tmodel = nn.Sequential(
            *([nn.AvgPool2d(2), nn.Flatten()] if pool else []),
            nn.Linear(fin, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 10),
        )
        topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
        tX, ty = torch.from_numpy(X), torch.from_numpy(y)
        loss_fn = nn.CrossEntropyLoss()

        def pytorch():
            perm = torch.randperm(len(tX))
            for i in range(0, len(tX), batch):
                idx = perm[i : i + batch]
                topt.zero_grad()
                loss_fn(tmodel(tX[idx]), ty[idx]).backward()
                topt.step()

        fns["torch"] = pytorch
    return fns


# ---------------------------------------------------------------------------- report
def fmt_time(t):
    if t is None:
        return "-"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if t >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t / 1e-9:.3g} ns"


def table(title, rows, rate_unit, bandwidth=None):
    head = ["case", "layerkit", "numpy", "torch", "np/lk", "torch/lk"]
    if rate_unit:
        head.append(f"lk {rate_unit}")
    if bandwidth:
        head.append("of copyto")
    lines = [head]
    for name, times, work in rows:
        lk_t, np_t, th_t = times["layerkit"], times["numpy"], times["torch"]
        row = [
            name,
            fmt_time(lk_t),
            fmt_time(np_t),
            fmt_time(th_t),
            f"{np_t / lk_t:.2f}",
            f"{th_t / lk_t:.2f}" if th_t else "-",
        ]
        if rate_unit:
            row.append(f"{work / lk_t / 1e9:.1f}" if work else "-")
        if bandwidth:
            row.append(f"{work / lk_t / 1e9 / bandwidth:.2f}")
        lines.append(row)
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    print(f"\n{title}")
    for j, r in enumerate(lines):
        print(
            "  "
            + "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))
            )
        )
        if j == 0:
            print("  " + "  ".join("-" * w for w in widths))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument(
        "--memory-child", choices=["layerkit", "numpy", "torch"], help=argparse.SUPPRESS
    )
    parser.add_argument("--alternate-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument(
        "--only",
        default="dense,softmax,pool,call,alternate,train,memory",
        help="comma-separated case families",
    )
    args = parser.parse_args(argv)
    if args.memory_child:
        return _memory_child(args.memory_child, args.smoke)
    if args.alternate_child:
        return _alternate_child(args.alternate_child, args.smoke)
    repeat = 1 if args.smoke else args.repeat
    thread_counts = [int(t) for t in args.threads.split(",")]
    dtypes = [np.dtype(d) for d in args.dtypes.split(",")]
    only = set(args.only.split(","))
    rng = np.random.default_rng(0)

    print(
        f"layerkit {lk.__version__}, numpy {np.__version__}, "
        f"torch {torch.__version__ if torch else 'not installed: its columns are left out'}"
    )
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus, "
        f"{_cpu_name()}"
    )
    if threadpool_limits is None:
        print("threadpoolctl is not installed: NumPy's BLAS keeps its own thread count")
    print(f"median of {repeat} samples; ratios > 1 mean layerkit is faster")

    dense_sizes = [(1, 784, 10), (32, 784, 128), (64, 16, 64), (256, 784, 256), (1024, 1024, 1024)]
    softmax_sizes = [(1, 10), (256, 10), (1024, 1000), (64, 32000)]
    pool_sizes = [(1, 1, 8, 8), (64, 1, 8, 8), (64, 16, 28, 28), (32, 64, 56, 56)]
    if args.smoke:
        dense_sizes, softmax_sizes, pool_sizes = dense_sizes[:3], softmax_sizes[:2], pool_sizes[:2]

    bandwidth = copy_bandwidth(repeat)
    print(f"np.copyto of 64 MiB: {bandwidth:.1f} GB/s (read + write)")

    for nt in thread_counts:
        with threads(nt):
            label = f"{nt} thread{'s' if nt > 1 else ''}"
            for dt in dtypes:
                tag = f"{dt.name}, {label}"
                if "dense" in only:
                    rows = []
                    for n, fin, fout in dense_sizes:
                        fns, work = dense_case(n, fin, fout, dt, rng)
                        rows.append((f"dense {n}x{fin}->{fout}", measure_all(fns, repeat), work))
                    table(f"Dense forward + backward ({tag})", rows, "GFLOP/s")
                if "softmax" in only:
                    rows = []
                    for n, k in softmax_sizes:
                        fns, work = softmax_case(n, k, dt, rng)
                        rows.append((f"softmax {n}x{k}", measure_all(fns, repeat), work))
                    table(f"Softmax forward + backward ({tag})", rows, "GB/s", bandwidth)
                if "pool" in only:
                    rows = []
                    for shape in pool_sizes:
                        fns, work = pool_case(shape, dt, rng)
                        name = "avgpool2d 2x2 " + "x".join(map(str, shape))
                        rows.append((name, measure_all(fns, repeat), work))
                    table(f"AvgPool2d forward + backward ({tag})", rows, "GB/s", bandwidth)
                if "call" in only:
                    fns, _ = call_overhead_case(dt, rng)
                    rows = [("relu(1x4)", measure_all(fns, repeat), None)]
                    table(f"One call on a 1x4 input ({tag})", rows, "")
            if "alternate" in only:
                t = measure_all(alternating_case(rng), repeat)
                ratio = t["alternating"] / (t["numpy"] + t["layerkit"])
                print(f"\nAlternating NumPy matmul and layerkit Dense, 256x784->256 ({label}):")
                print(
                    f"  numpy alone {fmt_time(t['numpy'])}, layerkit alone {fmt_time(t['layerkit'])},"
                    f" alternating {fmt_time(t['alternating'])}: {ratio:.2f}x the sum of the two"
                )
                t_np, t_lk = alternating_split(rng, 20 if args.smoke else 400)
                print(
                    f"  median call in that loop: numpy {fmt_time(t_np)}, layerkit {fmt_time(t_lk)}"
                )
                t_np, t_lk = _alternating_without_spin(nt, args.smoke)
                print(
                    "  the same, NumPy's BLAS threads sleeping once idle (OPENBLAS_THREAD_TIMEOUT=4):"
                    f" numpy {fmt_time(t_np)}, layerkit {fmt_time(t_lk)}"
                )
            if "train" in only:
                rows = []
                for name, X, y, batch, pool, fin, hidden in training_cases(args.smoke, rng):
                    fns = train_fns(X, y, batch, pool, fin, hidden)
                    rows.append((name, measure_all(fns, max(3, repeat // 2)), None))
                table(f"One training epoch, float32 ({label})", rows, "")
    if "memory" in only:
        print(
            "\nPeak memory of one epoch of the 784-256-10 workload, each library in its own process"
        )
        print("(peak resident set during a first epoch minus the resident set before it):")
        for lib in ("layerkit", "numpy", "torch"):
            if lib == "torch" and torch is None:
                print("  torch: not installed")
                continue
            print(f"  {lib}: {_peak_memory(lib, args.smoke):.0f} MB")
    return 0


def _status_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _memory_child(lib, smoke):
    """Runs one epoch with one library and prints how far its peak resident set rose above the
    resident set it started from (data and library loaded)."""
    rng = np.random.default_rng(0)
    _, X, y, batch, pool, fin, hidden = training_cases(smoke, rng)[1]
    fn = train_fns(X, y, batch, pool, fin, hidden, only=lib)[lib]
    base = _status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak (VmHWM) to the current resident set
    fn()
    print(max(_status_mb("VmHWM") - base, 0.0))
    return 0


def _peak_memory(lib, smoke):
    import subprocess

    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", lib]
    if smoke:
        cmd.append("--smoke")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


if __name__ == "__main__":
    sys.exit(main())
