"""Once warm, a training step allocates nothing: activations, gradients and optimizer state live
in buffers reused from step to step."""

import tracemalloc

import layerkit as lk
import numpy as np
import pytest
from layerkit.model import _Trainer


@pytest.mark.parametrize("optimizer", [lambda: lk.SGD(lr=0.01, momentum=0.9), lambda: lk.Adam()])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_warm_training_step_allocates_nothing(rng, optimizer, threads):
    X = rng.standard_normal((64 * 8, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, len(X))
    model = lk.Sequential(
        [
            lk.AvgPool2d(2),
            lk.Flatten(),
            lk.Dense(16, 64, seed=0),
            lk.ReLU(),
            lk.Dense(64, 10, seed=1),
            lk.Softmax(),
        ]
    )
    with lk.threads(threads):
        trainer = _Trainer(model, X, y, "cross_entropy", optimizer(), batch_size=64)
        batches = np.arange(len(X)).reshape(-1, 64)
        tracemalloc.start()
        try:
            # Warm-up: buffers, optimizer state and NumPy's small-object caches are made here.
            for _ in range(3):
                for idx in batches:
                    trainer.step(idx)
            growths = lk.diagnostics.buffer_growths()
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            for _ in range(10):
                for idx in batches:
                    trainer.step(idx)
            after, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert lk.diagnostics.buffer_growths() == growths  # no C++ buffer grew
    assert after - before < 512  # nothing kept
    # The smallest per-step array (64 x 10 float32 logits) is 2560 bytes: none was made, even
    # for a moment.
    assert peak - before < 2048


def test_the_counter_sees_growth():
    """The C++ counter the test above relies on does count a buffer that has to grow."""
    d = lk.Dense(8, 8, seed=0)
    d(np.ones((4, 8)))
    before = lk.diagnostics.buffer_growths()
    d(np.ones((400, 8)))  # a larger batch: the input cache must grow
    assert lk.diagnostics.buffer_growths() > before
