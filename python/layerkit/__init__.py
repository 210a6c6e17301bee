"""layerkit: NumPy-native neural-network layers with a C++ core.

Layers (``Dense``, ``Softmax``, ``AvgPool2d``, ``ReLU``, ``Sigmoid``, ``Tanh``, ``Flatten``) take
and return NumPy arrays; ``Sequential`` trains them with ``SGD`` or ``Adam``.
"""

from . import diagnostics, losses, reference
from ._core import __version__
from .gradcheck import gradcheck
from .layers import AvgPool2d, Dense, Flatten, Layer, ReLU, Sigmoid, Softmax, Tanh
from .model import History, Sequential
from .optim import SGD, Adam, Optimizer
from .parallel import get_num_threads, set_num_threads, threads
from .serialization import load

__all__ = [
    "SGD",
    "Adam",
    "AvgPool2d",
    "Dense",
    "Flatten",
    "History",
    "Layer",
    "Optimizer",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "__version__",
    "diagnostics",
    "get_num_threads",
    "gradcheck",
    "load",
    "losses",
    "reference",
    "set_num_threads",
    "threads",
]
