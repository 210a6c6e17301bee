"""Views into the compiled core, for tests and for users checking their own setup."""

from __future__ import annotations

import contextlib

from . import _core

__all__ = ["buffer_growths", "has_avx2", "portable_kernels"]


def buffer_growths():
    """How many times a buffer kept by a layer or kernel has had to grow since import. Constant
    across training steps once they are warm: nothing is allocated per step."""
    return _core.buffer_growths()


def has_avx2():
    """Whether this CPU runs layerkit's AVX2 + FMA kernels (otherwise the portable ones run)."""
    return _core._has_avx2()


@contextlib.contextmanager
def portable_kernels():
    """Runs the block with the portable C++ kernels even where AVX2 is available."""
    _core._use_portable_kernels(True)
    try:
        yield
    finally:
        _core._use_portable_kernels(False)
