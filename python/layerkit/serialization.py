"""Saving and loading models: one ``.npz`` file, readable with plain NumPy, no pickle.

The file holds one array per parameter, named ``"<layer index>.<name>"``, the optimizer's state
arrays (``"optimizer.<parameter index>.<name>"``) when the model has an optimizer, and
``__layerkit__``: a JSON string with the format version, the architecture (each layer's class and
config), the optimizer's class, config and scalar state, the model's ``fit_state`` (seed and
epochs done, for resuming), and a SHA-256 checksum of every array. It is written to a temporary file and renamed into place, so
a crash while saving leaves any previous file whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile

import numpy as np

from . import layers as _layers
from . import optim as _optim
from ._core import __version__
from .model import Sequential

__all__ = ["load", "save"]

FORMAT = "layerkit.sequential"
FORMAT_VERSION = 1
_META = "__layerkit__"
_LAYER_CLASSES = {name: getattr(_layers, name) for name in _layers.__all__ if name != "Layer"}
_OPTIMIZER_CLASSES = {"SGD": _optim.SGD, "Adam": _optim.Adam}


def _checksum(arrays):
    h = hashlib.sha256()
    for name, a in arrays.items():
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _optimizer_entry(optimizer, arrays):
    """The optimizer as JSON, its state arrays added to ``arrays``."""
    if type(optimizer).__name__ not in _OPTIMIZER_CLASSES:
        raise TypeError(f"save: cannot store a {type(optimizer).__name__} optimizer")
    state = None
    if optimizer.state is not None:
        state = []
        for i, entry in enumerate(optimizer.state):
            scalars = {}
            for key, value in entry.items():
                if isinstance(value, np.ndarray):
                    arrays[f"optimizer.{i}.{key}"] = np.array(value)
                else:
                    scalars[key] = value
            state.append(scalars)
    return {"class": type(optimizer).__name__, "config": optimizer.get_config(), "state": state}


def _optimizer_from(entry, arrays):
    optimizer = _OPTIMIZER_CLASSES[entry["class"]](**entry["config"])
    if entry["state"] is not None:
        optimizer.state = []
        for i, scalars in enumerate(entry["state"]):
            restored = dict(scalars)
            prefix = f"optimizer.{i}."
            for name, value in arrays.items():
                if name.startswith(prefix):
                    restored[name[len(prefix) :]] = value.copy()
            optimizer.state.append(restored)
    return optimizer


def save(model, path, include_optimizer=True):
    """Writes ``model`` (a Sequential) to ``path``, atomically; the name is kept as given."""
    arrays = {name: np.array(value) for name, value, _ in model.parameters()}
    for i, layer in enumerate(model.layers):
        if type(layer).__name__ not in _LAYER_CLASSES:
            raise TypeError(f"save: layer {i} ({type(layer).__name__}) is not a layerkit layer")
    optimizer = getattr(model, "optimizer", None)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "layerkit_version": __version__,
        "layers": [{"class": type(l).__name__, "config": l.get_config()} for l in model.layers],
        "parameters": list(arrays),
        "optimizer": None,
        "fit_state": getattr(model, "fit_state", None),
    }
    if include_optimizer and optimizer is not None:
        meta["optimizer"] = _optimizer_entry(optimizer, arrays)
    meta["arrays"] = list(arrays)
    meta["sha256"] = _checksum(arrays)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".layerkit-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{_META: np.array(json.dumps(meta))}, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _not_ours(path, why):
    return ValueError(f"{path}: not a readable layerkit model file ({why})")


def load(path):
    """Rebuilds the Sequential saved at ``path``; its predictions equal the saved model's bitwise.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a truncated,
    corrupted, foreign or newer-format one.
    """
    path = os.fspath(path)
    try:
        # The file is opened here, not by np.load, so that it is closed whatever np.load raises.
        with open(path, "rb") as fh:
            f = np.load(fh, allow_pickle=False)
            if not isinstance(f, np.lib.npyio.NpzFile):
                raise _not_ours(path, "not an .npz archive")
            with f:
                if _META not in f.files:
                    raise _not_ours(path, "no layerkit header")
                meta = json.loads(str(f[_META]))
                arrays = {name: f[name] for name in meta.get("arrays", [])}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except ValueError as e:
        if str(e).startswith(f"{path}: not a readable"):
            raise
        raise _not_ours(path, e) from e
    except (OSError, EOFError, KeyError, TypeError, AttributeError, zipfile.BadZipFile) as e:
        raise _not_ours(path, f"{type(e).__name__}: {e}") from e

    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _not_ours(path, "unknown format")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: written in layerkit format version {version}; this layerkit "
            f"({__version__}) reads versions up to {FORMAT_VERSION}: upgrade layerkit"
        )
    if _checksum(arrays) != meta.get("sha256"):
        raise _not_ours(path, "checksum mismatch: the stored arrays are corrupted")
    try:
        layer_list = [
            _LAYER_CLASSES[spec["class"]].from_config(spec["config"]) for spec in meta["layers"]
        ]
        model = Sequential(layer_list)
        if meta.get("optimizer") is not None:
            model.optimizer = _optimizer_from(meta["optimizer"], arrays)
        model.fit_state = meta.get("fit_state")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _not_ours(path, f"bad architecture: {e}") from e
    params = model.parameters()
    if [name for name, _, _ in params] != meta["parameters"]:
        raise _not_ours(path, "the parameters do not match the architecture")
    for name, value, _ in params:
        saved = arrays[name]
        if saved.shape != value.shape or saved.dtype != value.dtype:
            raise _not_ours(path, f"parameter {name} has shape {saved.shape} {saved.dtype}")
        value[...] = saved
    return model
