"""keras.utils.get_file (cache paths as Keras's, download from a file:// origin, hashes, archive
extraction, hostile archives, offline errors) and the Keras datasets read from Keras's cache."""

import gzip
import hashlib
import io
import os
import pathlib
import pickle
import tarfile
import zipfile

import numpy as np
import pytest

from fastcnn import datasets, utils


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_get_file_downloads_once_into_keras_s_cache_path(keras, tmp_path, capsys):
    source = tmp_path / "origin" / "weights.bin"
    source.parent.mkdir()
    source.write_bytes(b"0123456789" * 100)
    cache = tmp_path / "cache"
    cache.mkdir()  # Keras (and fastcnn) use /tmp/.keras for a cache_dir that does not exist
    path = utils.get_file("weights.bin", origin=source.as_uri(), cache_dir=str(cache), cache_subdir="models",
                          file_hash=_sha256(source))
    assert "Downloading data from" in capsys.readouterr().out
    assert path == keras.utils.get_file("weights.bin", origin=source.as_uri(), cache_dir=str(cache),
                                        cache_subdir="models", file_hash=_sha256(source))
    assert pathlib.Path(path).read_bytes() == source.read_bytes()
    capsys.readouterr()
    assert utils.get_file("weights.bin", origin=source.as_uri(), cache_dir=str(cache), cache_subdir="models") == path
    assert capsys.readouterr().out == ""  # found in the cache: nothing fetched
    with pytest.raises(ValueError, match="Incomplete or corrupted file detected. The auto file hash"):
        utils.get_file("weights.bin", origin=source.as_uri(), cache_dir=str(cache), cache_subdir="models",
                       file_hash="0" * 64)
    assert "does not match the original value" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_get_file_extracts_archives_where_keras_does(keras, tmp_path, kind):
    archive = tmp_path / f"bundle.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as bundle:
            bundle.writestr("inner/data.txt", "hello")
    else:
        with tarfile.open(archive, "w:gz") as bundle:
            info = tarfile.TarInfo("inner/data.txt")
            info.size = 5
            bundle.addfile(info, io.BytesIO(b"hello"))
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    for fname in ("bundle-target", f"bundle.{kind}"):
        ours = utils.get_file(fname, origin=archive.as_uri(), extract=True, cache_dir=str(tmp_path / "ours"))
        theirs = keras.utils.get_file(fname, origin=archive.as_uri(), extract=True,
                                      cache_dir=str(tmp_path / "theirs"))
        assert os.path.relpath(ours, tmp_path / "ours") == os.path.relpath(theirs, tmp_path / "theirs")
        assert pathlib.Path(ours, "inner", "data.txt").read_text() == "hello"


def test_get_file_refuses_archives_that_write_outside_their_folder(tmp_path):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as bundle:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        bundle.addfile(info, io.BytesIO(b"bad"))
    (tmp_path / "cache").mkdir()
    with pytest.raises(ValueError, match=r"Refusing to extract '\.\./escaped\.txt'"):
        utils.get_file("evil-target", origin=archive.as_uri(), extract=True, cache_dir=str(tmp_path / "cache"))
    assert not (tmp_path / "cache" / "datasets" / "escaped.txt").exists()


def test_get_file_offline_names_the_url_and_where_to_put_the_file(tmp_path):
    (tmp_path / "cache").mkdir()
    with pytest.raises(ConnectionError, match=r"URL fetch failure on http://127\.0\.0\.1:9/data\.npz: .*put it at "
                                              r".*cache/datasets/data\.npz"):
        utils.get_file(origin="http://127.0.0.1:9/data.npz", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match='Please specify the "origin" argument'):
        utils.get_file("x")
    with pytest.raises(ValueError, match="Paths are no longer accepted as the `fname` argument"):
        utils.get_file(os.path.join("a", "b"), origin="http://127.0.0.1:9/b", cache_dir=str(tmp_path / "cache"))


def _cifar_batch(path, images, labels, label_key="labels"):
    with open(path, "wb") as file:
        pickle.dump({b"data": images.reshape(len(images), -1), label_key.encode(): labels}, file)


def test_cifar10_and_cifar100_read_keras_s_cache(tmp_path, monkeypatch, rng):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    folder = tmp_path / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images = rng.integers(0, 256, (6 * 4, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, 6 * 4)
    for index in range(5):
        _cifar_batch(folder / f"data_batch_{index + 1}", images[index * 4:(index + 1) * 4],
                     labels[index * 4:(index + 1) * 4].tolist())
    _cifar_batch(folder / "test_batch", images[20:], labels[20:].tolist())
    (x_train, y_train), (x_test, y_test) = datasets.cifar10.load_data()
    assert x_train.shape == (20, 32, 32, 3) and y_train.shape == (20, 1) and x_test.shape == (4, 32, 32, 3)
    assert x_train.dtype == y_train.dtype == np.uint8
    np.testing.assert_array_equal(x_train, images[:20].transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(y_test[:, 0], labels[20:])
    folder = tmp_path / "datasets" / "cifar-100-python-target" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, part in (("train", slice(0, 20)), ("test", slice(20, 24))):
        with open(folder / name, "wb") as file:
            pickle.dump({b"data": images[part].reshape(-1, 3072), b"fine_labels": labels[part].tolist(),
                         b"coarse_labels": (labels[part] // 5).tolist()}, file)
    (_, coarse), _ = datasets.cifar100.load_data(label_mode="coarse")
    np.testing.assert_array_equal(coarse[:, 0], labels[:20] // 5)
    with pytest.raises(ValueError, match='`label_mode` must be one of `"fine"`, `"coarse"`'):
        datasets.cifar100.load_data(label_mode="medium")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/fastcnn_pwned",))


def test_a_tampered_cifar_file_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    folder = tmp_path / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    with open(folder / "data_batch_1", "wb") as file:
        pickle.dump({b"data": _Exploit(), b"labels": [0]}, file)
    with pytest.raises(ValueError, match="Refusing to deserialize `posix.system`"):
        datasets.cifar10.load_data()
    assert not os.path.exists("/tmp/fastcnn_pwned")


def test_fashion_mnist_reads_keras_s_cache(tmp_path, monkeypatch, rng):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    folder = tmp_path / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7).astype(np.uint8)
    for prefix, part in (("train", slice(0, 5)), ("t10k", slice(5, 7))):
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as file:
            file.write(b"\0" * 8 + labels[part].tobytes())
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as file:
            file.write(b"\0" * 16 + images[part].tobytes())
    (x_train, y_train), (x_test, y_test) = datasets.fashion_mnist.load_data()
    np.testing.assert_array_equal(x_train, images[:5])
    np.testing.assert_array_equal(y_test, labels[5:])


def _keras_mnist_file(path, rng, train=30, test=7):
    """A small file in Keras's mnist.npz format (np.savez of uint8 arrays under its four keys)."""
    arrays = {
        "x_train": rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, test).astype(np.uint8),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def test_mnist_reads_keras_s_cached_file(tmp_path, monkeypatch, rng):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    arrays = _keras_mnist_file(tmp_path / "datasets" / "mnist.npz", rng)
    (x_train, y_train), (x_test, y_test) = datasets.mnist.load_data()
    for got, key in ((x_train, "x_train"), (y_train, "y_train"), (x_test, "x_test"), (y_test, "y_test")):
        assert got.dtype == np.uint8 and got.shape == arrays[key].shape
        np.testing.assert_array_equal(got, arrays[key])
    # Keras's `path` is a name inside its cache folder
    other = _keras_mnist_file(tmp_path / "datasets" / "digits.npz", rng, train=3, test=2)
    (x_train, _), _ = datasets.mnist.load_data(path="digits.npz")
    np.testing.assert_array_equal(x_train, other["x_train"])
    # or a path of its own (a pathlib.Path too)
    elsewhere = _keras_mnist_file(tmp_path / "elsewhere" / "m.npz", rng, train=4, test=1)
    (x_train, _), (x_test, _) = datasets.mnist.load_data(path=tmp_path / "elsewhere" / "m.npz")
    np.testing.assert_array_equal(x_train, elsewhere["x_train"])
    assert x_test.shape == (1, 28, 28)
    # the embedded subset stays reachable, and the demo trains on it whatever the cache holds
    (x_train, _), (x_test, _) = datasets.mnist.load_embedded()
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    from fastcnn.__main__ import load_example

    (x_train, _), (x_test, _), description = load_example(2, None)
    assert x_train.shape == (4000, 28, 28, 1) and x_test.shape == (1000, 28, 28, 1)
    assert description == "MNIST subset"


def test_mnist_without_keras_s_file_is_the_embedded_subset(tmp_path, monkeypatch, rng):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    _keras_mnist_file(tmp_path / "mnist.npz", rng)  # in the working folder, not the cache: not read
    (x_train, y_train), (x_test, y_test) = datasets.mnist.load_data()
    (x_embedded, y_embedded), (x_embedded_test, _) = datasets.mnist.load_embedded()
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    np.testing.assert_array_equal(x_train, x_embedded)
    np.testing.assert_array_equal(y_train, y_embedded)
    np.testing.assert_array_equal(x_test, x_embedded_test)
    (x_none, _), _ = datasets.mnist.load_data(path=None)
    np.testing.assert_array_equal(x_none, x_embedded)
    with pytest.raises(FileNotFoundError, match="No MNIST file at 'missing.npz'"):
        datasets.mnist.load_data(path="missing.npz")


def test_a_damaged_mnist_file_raises_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "datasets").mkdir()
    np.savez(tmp_path / "datasets" / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match=r"is not a Keras mnist.npz file: it lacks \['x_test', 'y_test', "
                                         r"'y_train'\]"):
        datasets.mnist.load_data()
    (tmp_path / "datasets" / "mnist.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="is not a readable .npz file"):
        datasets.mnist.load_data()
