"""Where a dataset's images come from: :class:`DatasetSource` (the interface), the embedded
datasets shipped in Python packages (:class:`EmbeddedSource`) and the torchvision datasets
read from a local folder (:class:`FolderSource`), plus the seeded stratified split and the
checks every loaded split passes. A folder of the user's own images is
:mod:`.imagefolder`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RbgError
from . import files as data_files
from .types import DatasetInfo, ImageData


@dataclass(frozen=True)
class DatasetSource:
    info: DatasetInfo
    description: str

    def load(
        self, train: bool, *, data_dir: Path, download: bool, split_seed: int
    ) -> ImageData:  # pragma: no cover - overridden
        raise NotImplementedError

    def describe(self, data_dir: Path) -> DatasetInfo:
        """The dataset's info; a source whose info depends on its files reads them."""
        return self.info


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class random split by a seeded generator; returns sorted (train, test) indices."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def split_indices(labels: np.ndarray, test_fraction: float, seed: int, train: bool
                  ) -> np.ndarray:
    """One side of :func:`stratified_split`: the test split in file order, the training
    split in a seeded shuffled order (mnist5k's file is sorted by class, and a user's own
    loop without shuffling would see one class per batch)."""
    tr, te = stratified_split(labels, test_fraction, seed)
    return tr[np.random.default_rng([seed, 1]).permutation(len(tr))] if train else te


def as_image_data(
    images: np.ndarray, labels: np.ndarray, scale: float, info: DatasetInfo,
    source: Path | str = "",
) -> ImageData:
    """Checked tensors: as many labels as images, every label a class of ``info``, the
    images of its shape."""
    where = f" in {source}" if source else ""
    if len(images) != len(labels):
        raise RbgError(f"dataset {info.name!r}{where}: {len(labels)} labels for "
                       f"{len(images)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= info.num_classes):
        raise RbgError(f"dataset {info.name!r}{where}: labels must be in 0..{info.num_classes - 1}"
                       f", found {int(labels.min())}..{int(labels.max())}")
    if tuple(images.shape[1:]) != tuple(info.input_shape):
        raise RbgError(f"dataset {info.name!r}{where}: images of shape {tuple(images.shape[1:])}"
                       f", expected {tuple(info.input_shape)}")
    import torch

    # 8-bit images stay uint8; deeper ones (16-bit PNGs, scale 65535) are kept as int32
    # (torch's uint16 lacks kernels), never clipped to 8 bits.
    dtype = np.uint8 if images.dtype == np.uint8 or scale <= 255 else np.int32
    return ImageData(
        torch.from_numpy(np.array(images, dtype=dtype, order="C", copy=True)),
        torch.from_numpy(np.array(labels, dtype=np.int64, copy=True)),
        scale,
        info,
    )


@dataclass(frozen=True)
class EmbeddedSource(DatasetSource):
    """A small real dataset shipped inside a Python package, split 80/20 stratified; the
    training split comes in a seeded shuffled order, the test split in file order."""

    reader: str = ""
    scale: float = 255.0
    test_fraction: float = 0.2

    def load(self, train: bool, *, data_dir: Path, download: bool, split_seed: int) -> ImageData:
        images, labels = getattr(data_files, self.reader)()
        idx = split_indices(labels, self.test_fraction, split_seed, train)
        return as_image_data(images[idx], labels[idx], self.scale, self.info)


@dataclass(frozen=True)
class FolderSource(DatasetSource):
    """A torchvision dataset read from ``data_dir`` (downloaded there with ``--download``)."""

    folder: str = ""
    reader: str = ""
    torchvision_class: str = ""
    probe: str = ""  # a file that marks a folder holding the dataset (with or without .gz)
    system_dirs: tuple[str, ...] = ()  # where a system package installs the files

    def locate(self, root: Path) -> Path:
        """The first folder holding the files: ``root/folder`` (torchvision's layout),
        ``root`` itself (a flat folder of the files), then the system folders."""
        candidates = [root / self.folder, root, *(Path(d) for d in self.system_dirs)]
        for folder in candidates if self.probe else ():
            if any((folder / (self.probe + ext)).is_file() for ext in ("", ".gz")):
                return folder
        return root / self.folder

    def load(self, train: bool, *, data_dir: Path, download: bool, split_seed: int) -> ImageData:
        root = Path(data_dir)
        if download:
            _download(self.torchvision_class, root, train)
        folder = self.locate(root)
        try:
            images, labels = getattr(data_files, self.reader)(folder, train)
        except FileNotFoundError as err:
            also = "".join(f", {d}" for d in self.system_dirs)
            where = f"{root / self.folder}, {root}{also}" if self.probe else str(folder)
            raise RbgError(
                f"dataset {self.info.name!r} not found in {where} "
                f"({err.args[0] if err.args else 'missing files'}); put the files there, "
                "pass --data-dir, or add --download when online"
            ) from None
        except data_files.DataFileError as err:
            raise RbgError(f"dataset {self.info.name!r}: {err}") from None
        except OSError as err:
            raise RbgError(f"dataset {self.info.name!r}: cannot read {err.filename or root} "
                           f"({err.strerror})") from None
        return as_image_data(images, labels, 255.0, self.info, folder)


def _download(torchvision_class: str, root: Path, train: bool) -> None:
    import torchvision.datasets as tvd

    cls = getattr(tvd, torchvision_class)
    try:
        root.mkdir(parents=True, exist_ok=True)
        if torchvision_class == "SVHN":
            cls(str(root), split="train" if train else "test", download=True)
        else:
            cls(str(root), train=train, download=True)
    except Exception as err:  # network errors come in many types
        raise RbgError(f"download of {torchvision_class} into {root} failed: {err}") from None


