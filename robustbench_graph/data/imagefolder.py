"""A folder of the user's own images as a dataset (``imagefolder``, docs/datasets.md): one
sub-folder of PNG/JPEG images per class, the info read from the files."""

from __future__ import annotations

import functools
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RbgError
from . import files as data_files
from .sources import DatasetSource, as_image_data, split_indices
from .types import DatasetInfo, ImageData

DATASET_FILE = "rbg-dataset.json"  # an image folder's declared statistics
MAX_DATASET_FILE_BYTES = 2**20  # an rbg-dataset.json beyond this is not one
MIN_STD = 1e-4  # the floor of computed standard deviations too


@dataclass(frozen=True)
class ImageFolderSource(DatasetSource):
    """One sub-folder of PNG/JPEG images per class (torchvision's ImageFolder convention) in
    ``data_dir``: ``train/`` and ``test/`` folders of class folders when both exist, else the
    class folders themselves, split stratified (``test_fraction``, by the split seed). The
    info is read from the files: classes (sorted names), image shape, and the channel
    mean/std declared in ``rbg-dataset.json`` or computed over the training images (the
    whole folder when there is no ``train/``)."""

    test_fraction: float = 0.2

    def _read(self, root: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
        try:
            return _read_image_folder(root.resolve(), _folder_stamp(root))
        except FileNotFoundError:
            raise RbgError(f"dataset 'imagefolder': {root} is not a folder of class folders "
                           "(pass it with --data-dir)") from None
        except data_files.DataFileError as err:
            raise RbgError(f"dataset 'imagefolder': {err}") from None

    def describe(self, data_dir: Path) -> DatasetInfo:
        root = Path(data_dir)
        return self._info(root, *self._read(root))

    def _info(self, root: Path, parts: dict[str, tuple[np.ndarray, np.ndarray]],
              classes: list[str]) -> DatasetInfo:
        """The info of the folder ``root`` whose files :meth:`_read` returned."""
        images = parts["train"][0] if "train" in parts else parts["all"][0]
        declared = _declared_statistics(root, images.shape[1])
        if declared is None:
            pixels = images.reshape(len(images), images.shape[1], -1).transpose(1, 0, 2)
            flat = pixels.reshape(images.shape[1], -1).astype(np.float64) / _scale(images)
            mean = tuple(round(float(v), 4) for v in flat.mean(1))
            std = tuple(round(max(float(v), MIN_STD), 4) for v in flat.std(1))
        else:
            mean, std = declared
        return DatasetInfo(self.info.name, len(classes), tuple(images.shape[1:]), mean, std,
                           False, False)

    def load(self, train: bool, *, data_dir: Path, download: bool, split_seed: int) -> ImageData:
        root = Path(data_dir)
        if download:
            raise RbgError("dataset 'imagefolder' cannot be downloaded; pass its folder with "
                           "--data-dir")
        parts, classes = self._read(root)
        info = self._info(root, parts, classes)
        if "all" in parts:
            images, labels = parts["all"]
            idx = split_indices(labels, self.test_fraction, split_seed, train)
            images, labels = images[idx], labels[idx]
        else:
            images, labels = parts["train" if train else "test"]
        return as_image_data(images, labels, _scale(images), info, root)


def _scale(images: np.ndarray) -> float:
    """The divisor that makes the folder's pixels [0, 1]: 65535 for 16-bit images."""
    return 65535.0 if images.dtype == np.uint16 else 255.0


def _folder_stamp(root: Path) -> tuple:
    """What changes when images are added, removed or replaced (folder and file times)."""
    try:
        return tuple(sorted((str(p), p.stat().st_mtime_ns) for p in Path(root).rglob("*")))
    except OSError:
        return ()


@functools.lru_cache(maxsize=4)
def _read_image_folder(root: Path, _stamp: tuple
                       ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """``({"train": .., "test": ..} or {"all": ..}, classes)``; cached per folder state."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = data_files.image_folder_classes(root / "train")
        extra = sorted(set(data_files.image_folder_classes(root / "test")) - set(classes))
        if extra:
            raise data_files.DataFileError(f"{root / 'test'} has classes that {root / 'train'} "
                                           f"lacks: {', '.join(extra)}")
        parts = {split: data_files.read_image_folder(root / split, classes)
                 for split in ("train", "test")}
        if parts["train"][0].shape[1:] != parts["test"][0].shape[1:]:
            raise data_files.DataFileError(f"{root}: the train and test images differ in size "
                                           "or channels")
    else:
        classes = data_files.image_folder_classes(root)
        if not classes:
            raise FileNotFoundError(root)
        parts = {"all": data_files.read_image_folder(root, classes)}
    if len(classes) < 2:
        raise data_files.DataFileError(f"{root} has {len(classes)} class folder(s); a "
                                       "classifier needs at least 2")
    return parts, classes




def _declared_statistics(root: Path, channels: int
                         ) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The channel mean/std ``rbg-dataset.json`` declares, checked when read: one per
    channel, means in [0, 1] and standard deviations in [``MIN_STD``, 1], as those of [0, 1]
    pixels are (an infinite std normalises every input to 0, a NaN one or a mean of 1e30
    makes every output NaN); None without the file."""
    path = root / DATASET_FILE
    if not os.path.lexists(path):
        return None
    where = f"{path} must be JSON with 'mean' and 'std' lists of numbers"
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_DATASET_FILE_BYTES:
            raise RbgError(f"{path} is not a regular file of at most "
                           f"{MAX_DATASET_FILE_BYTES} bytes")
        with open(path, "rb") as fh:
            text = fh.read(MAX_DATASET_FILE_BYTES + 1).decode("utf-8")
        record = json.loads(text)
        mean = tuple(float(v) for v in record["mean"])
        std = tuple(float(v) for v in record["std"])
    except RbgError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RecursionError, OverflowError):
        raise RbgError(where) from None
    if len(mean) != channels or len(std) != channels:
        raise RbgError(f"{path}: 'mean' and 'std' need {channels} value(s) each")
    if not all(0.0 <= v <= 1.0 for v in mean):  # NaN fails too
        raise RbgError(f"{path}: every 'mean' must be a number in [0, 1] (the mean of "
                       f"[0, 1] pixels), got {list(mean)}")
    if not all(MIN_STD <= v <= 1.0 for v in std):
        raise RbgError(f"{path}: every 'std' must be a number in [{MIN_STD:g}, 1] (the "
                       f"deviation of [0, 1] pixels), got {list(std)}")
    return mean, std
