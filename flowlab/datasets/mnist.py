"""MNIST: downloaded the usual Keras way when online, read from gzipped IDX files when offline.

Where the data come from, in order:

1. a directory passed as ``directory=``, or named by the environment variable
   ``FLOWLAB_MNIST_DIR``, holding the original files (``train-images-idx3-ubyte.gz``,
   ``t10k-images-idx3-ubyte.gz`` and their ``-labels-idx1-`` companions);
2. else ``tf.keras.datasets.mnist.load_data``, which downloads it once and caches it in
   ``~/.keras/datasets``, as Keras users expect.

The package does not know where a machine keeps its own copy: the tests and CI name it with
``FLOWLAB_MNIST_DIR`` (the root ``conftest.py`` and ``make test`` set it to ``../shared/data/mnist``
when that folder exists).

When none works, :class:`MNISTNotFoundError` says how to get the data.  Every IDX file is checked:
its magic number (2051 images, 2049 labels), its sizes, and that the gzip stream is complete.

Example::

    train, test = load_mnist_split(9000, 1000)      # uint8, (n, 28, 28, 1)
    (x_train, y_train), (x_test, y_test) = load_mnist()   # the full 60,000 + 10,000
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from flowlab.validation import integer

__all__ = [
    "ENV_VAR",
    "FILES",
    "MNISTNotFoundError",
    "CorruptIDXError",
    "read_idx",
    "load_mnist_dir",
    "load_mnist",
    "load_mnist_split",
    "load_mnist_splits",
]

ENV_VAR = "FLOWLAB_MNIST_DIR"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049

_HOW_TO_GET_IT = (
    "Get MNIST in one of these ways: (1) run once on a machine with internet access, so "
    "tf.keras.datasets.mnist downloads and caches it; (2) download the gzipped IDX files "
    "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz, e.g. from https://storage.googleapis.com/cvdf-datasets/mnist/) "
    f"into a directory and pass it as directory=... or set {ENV_VAR}=/that/directory."
)


class MNISTNotFoundError(FileNotFoundError):
    """No MNIST files where we looked, and no download possible."""


class CorruptIDXError(ValueError):
    """A file is not a valid (gzipped) IDX file of the expected kind."""


def read_idx(path: Path | str, kind: str | None = None) -> np.ndarray:
    """Read a gzipped (or plain) IDX file of unsigned bytes; ``kind`` = "images" or "labels" checks the magic."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except FileNotFoundError:
        raise MNISTNotFoundError(f"{path}: no such file. {_HOW_TO_GET_IT}") from None
    except (OSError, EOFError, zlib.error) as err:
        raise CorruptIDXError(f"{path}: not a readable gzip file ({err}); delete it and fetch it again") from None
    if len(data) < 8:
        raise CorruptIDXError(f"{path}: {len(data)} bytes is too short for an IDX header")
    magic = struct.unpack(">I", data[:4])[0]
    expected = {"images": _IMAGES_MAGIC, "labels": _LABELS_MAGIC}.get(kind) if kind else None
    if kind is not None and expected is None:
        raise ValueError(f"kind must be 'images' or 'labels', got {kind!r}")
    if (magic >> 8) != 0x08 or (expected is not None and magic != expected):
        want = f"{expected} for {kind}" if expected is not None else "0x08nn for unsigned bytes"
        raise CorruptIDXError(f"{path}: magic number {magic} is not an IDX file of unsigned bytes ({want})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if ndim < 1 or len(data) < header:
        raise CorruptIDXError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    size = int(np.prod(shape))
    if len(data) - header != size:
        raise CorruptIDXError(
            f"{path}: the header promises {size} bytes of shape {shape}, the file holds {len(data) - header}: "
            "the file is truncated or corrupt; fetch it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _directory(directory: Path | str | None) -> Path | None:
    if directory is not None:
        return Path(directory)
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env) if env else None


def load_mnist_dir(directory: Path | str, part: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of one part ("train" or "test") from a directory of IDX files; images (n, 28, 28)."""
    if part not in FILES:
        raise ValueError(f"part must be 'train' or 'test', got {part!r}")
    directory = Path(directory)
    if not directory.is_dir():
        raise MNISTNotFoundError(f"{directory} is not a directory. {_HOW_TO_GET_IT}")
    image_file, label_file = (directory / name for name in FILES[part])
    missing = [p.name for p in (image_file, label_file) if not p.exists()]
    if missing:
        raise MNISTNotFoundError(f"{directory} lacks {', '.join(missing)}. {_HOW_TO_GET_IT}")
    images, labels = read_idx(image_file, "images"), read_idx(label_file, "labels")
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise CorruptIDXError(f"{image_file}: images of shape {images.shape[1:]}, expected 28x28")
    if labels.ndim != 1 or len(labels) != len(images):
        raise CorruptIDXError(f"{label_file}: {len(labels)} labels for {len(images)} images in {image_file.name}")
    if labels.max(initial=0) > 9:
        raise CorruptIDXError(f"{label_file}: labels must be digits 0-9, found {labels.max()}")
    return images, labels


def _download(cache_dir: Path | str | None) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    import flowlab  # noqa: F401  (Keras 2 before tf.keras is touched)
    # isort: split
    import tensorflow as tf

    kwargs: dict[str, Any] = {}
    if cache_dir is not None:
        kwargs["path"] = str(Path(cache_dir).resolve() / "mnist.npz")
    try:
        return tf.keras.datasets.mnist.load_data(**kwargs)
    except Exception as err:  # noqa: BLE001 - no network, proxy, disk: all mean "not available"
        raise MNISTNotFoundError(f"could not download MNIST ({type(err).__name__}: {err}). {_HOW_TO_GET_IT}") from None


def load_mnist(
    directory: Path | str | None = None, *, download: bool = True, cache_dir: Path | str | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The full dataset, ``((x_train, y_train), (x_test, y_test))``, images uint8 ``(n, 28, 28)``.

    From ``directory`` (or ``$FLOWLAB_MNIST_DIR``) if given, else downloaded and cached by Keras
    (in ``cache_dir`` if given, else ``~/.keras/datasets``) unless ``download=False``.
    """
    folder = _directory(directory)
    if folder is not None:
        return load_mnist_dir(folder, "train"), load_mnist_dir(folder, "test")
    if not download:
        raise MNISTNotFoundError(f"no MNIST directory given and download=False. {_HOW_TO_GET_IT}")
    return _download(cache_dir)


def load_mnist_split(
    n_train: int = 9000, n_test: int = 1000, directory: Path | str | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint ``(train, test)`` images, uint8 ``(n, 28, 28, 1)``, drawn from the official 10,000 test images.

    The offline split the labs, tests and benchmark use.  The images come from ``directory``, else
    ``$FLOWLAB_MNIST_DIR``, else a Keras download; shuffled with ``seed`` and cut into ``n_train``
    then ``n_test`` images.
    """
    n_train, n_test = integer(n_train, "n_train", minimum=0), integer(n_test, "n_test", minimum=0)
    folder = _directory(directory)
    if folder is not None:
        images, _ = load_mnist_dir(folder, "test")
    else:
        images = _download(None)[1][0]
    if n_train + n_test > len(images):
        raise ValueError(f"asked for {n_train} + {n_test} images, but the test set has only {len(images)}")
    order = np.random.default_rng(seed).permutation(len(images))
    images = images[order][..., None]
    return images[:n_train].copy(), images[n_train : n_train + n_test].copy()


def load_mnist_splits(
    n_train: int = 8000, n_validation: int = 1000, n_test: int = 1000, directory: Path | str | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint ``(train, validation, test)`` images, uint8 ``(n, 28, 28, 1)``, from the official 10,000 test images.

    Select the checkpoint (and anything else) on ``validation``; report ``test``, which no choice has
    seen.  The test part is the same as :func:`load_mnist_split`'s with ``n_train + n_validation``
    training images and the same ``seed``.
    """
    n_train, n_validation = integer(n_train, "n_train", minimum=0), integer(n_validation, "n_validation", minimum=0)
    train, test = load_mnist_split(n_train + n_validation, n_test, directory=directory, seed=seed)
    return train[:n_train].copy(), train[n_train:].copy(), test
