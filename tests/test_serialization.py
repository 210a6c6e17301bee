import json
import os
import zipfile

import layerkit as lk
import numpy as np
import pytest


def every_layer_model(dtype):
    return lk.Sequential(
        [
            lk.AvgPool2d(3, stride=1, padding=1, ceil_mode=True, count_include_pad=False),
            lk.AvgPool2d((2, 1), divisor_override=3),
            lk.Flatten(),
            lk.Dense(2 * 3 * 4, 7, dtype=dtype, seed=0),
            lk.Sigmoid(),
            lk.Dense(7, 5, bias=False, dtype=dtype, seed=1),
            lk.Tanh(),
            lk.Dense(5, 4, dtype=dtype, seed=2),
            lk.ReLU(),
            lk.Softmax(axis=1),
        ]
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_bitwise(tmp_path, rng, dtype):
    model = every_layer_model(dtype)
    X = rng.standard_normal((9, 2, 6, 4))
    y = rng.integers(0, 4, 9)
    model.fit(X, y, epochs=2, optimizer=lk.Adam(lr=0.05), seed=0, verbose=0)  # non-initial weights
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = lk.load(path)
    assert [repr(layer) for layer in loaded.layers] == [repr(layer) for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    for (na, va, _), (nb, vb, _) in zip(model.parameters(), loaded.parameters()):
        assert na == nb and va.dtype == vb.dtype
        np.testing.assert_array_equal(va, vb)


def test_file_is_plain_numpy_without_pickle(tmp_path):
    model = every_layer_model(np.float32)
    path = tmp_path / "m"
    model.save(path)
    assert os.listdir(tmp_path) == ["m"]  # the name is kept as given; no temporary file is left
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["__layerkit__"]))
        assert meta["format_version"] == 1
        assert [spec["class"] for spec in meta["layers"]][:3] == [
            "AvgPool2d",
            "AvgPool2d",
            "Flatten",
        ]
        np.testing.assert_array_equal(f["3.weight"], model.layers[3].weight)


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "m.npz"
    a, b = every_layer_model(np.float32), every_layer_model(np.float64)
    a.save(path)
    b.save(path)
    assert lk.load(path).layers[3].dtype == np.float64


def test_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "m.npz"
    every_layer_model(np.float32).save(path)
    before = path.read_bytes()

    class Custom(lk.Layer):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="not a layerkit layer"):
        lk.Sequential([Custom()]).save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


def _saved(tmp_path):
    path = tmp_path / "m.npz"
    every_layer_model(np.float64).save(path)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        lk.load(tmp_path / "nope.npz")


def test_truncated_file(tmp_path):
    path = _saved(tmp_path)
    data = path.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not a readable layerkit model file"):
            lk.load(path)


def test_corrupted_parameter(tmp_path):
    path = _saved(tmp_path)
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    w = np.load(path)["3.weight"].copy()
    w[0, 0] += 1.0
    rebuilt = tmp_path / "r.npz"
    with open(rebuilt, "wb") as f:  # a well-formed archive whose weight does not match its checksum
        arrays = {name[:-4]: np.load(path)[name[:-4]] for name in members}
        arrays["3.weight"] = w
        np.savez(f, **arrays)
    with pytest.raises(ValueError, match="checksum"):
        lk.load(rebuilt)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte inside the archive
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not a readable layerkit model file"):
        lk.load(path)


def test_foreign_files(tmp_path):
    npz = tmp_path / "other.npz"
    np.savez(npz, a=np.arange(3))
    with pytest.raises(ValueError, match="no layerkit header"):
        lk.load(npz)
    npy = tmp_path / "a.npy"
    np.save(npy, np.arange(3))
    with pytest.raises(ValueError, match="not an .npz archive"):
        lk.load(npy)
    text = tmp_path / "t.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a readable layerkit model file"):
        lk.load(text)
    pickled = tmp_path / "p.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a readable layerkit model file"):
        lk.load(pickled)


def _rewrite_meta(path, change):
    with np.load(path) as f:
        arrays = {name: f[name] for name in f.files}
    meta = json.loads(str(arrays["__layerkit__"]))
    change(meta)
    arrays["__layerkit__"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_newer_format_is_rejected(tmp_path):
    path = _saved(tmp_path)
    _rewrite_meta(path, lambda m: m.update(format_version=99))
    with pytest.raises(ValueError, match="format version 99.*upgrade layerkit"):
        lk.load(path)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m.update(format="something else"), "unknown format"),
        (lambda m: m["layers"][0].update({"class": "Conv2d"}), "bad architecture"),
        (
            lambda m: m["layers"][3]["config"].update(in_features=5),
            "do not match|parameter 3.weight",
        ),
        (lambda m: m["layers"][0]["config"].update(kernel_size=-1), "bad architecture"),
    ],
)
def test_inconsistent_header_is_rejected(tmp_path, change, match):
    path = _saved(tmp_path)
    _rewrite_meta(path, change)
    with pytest.raises(ValueError, match=match):
        lk.load(path)
