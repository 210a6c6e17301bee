"""The number of threads layerkit's kernels use.

Every kernel splits its output, never a sum, across threads, so results are bitwise identical for
any thread count. The default is the number of cores this process may run on.
"""

from __future__ import annotations

import contextlib
import os

from . import _core

__all__ = ["get_num_threads", "set_num_threads", "threads"]


def _available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_num_threads(n):
    """Use ``n`` threads (the calling one included) in every kernel."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an integer, got {n!r}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be at least 1, got {n}")
    _core.set_num_threads(n)


def get_num_threads():
    """The number of threads kernels use."""
    return _core.get_num_threads()


@contextlib.contextmanager
def threads(n):
    """``with layerkit.threads(n):`` runs the block with ``n`` threads, then restores the count."""
    saved = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(saved)


set_num_threads(_available_cores())
