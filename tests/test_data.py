import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from robustbench_graph.data import DATASETS, dataset_info, load_dataset, stratified_split
from robustbench_graph.data.datasets import FASHION_MNIST_SYSTEM_DIR
from robustbench_graph.data.imagefolder import ImageFolderSource
from robustbench_graph.errors import RbgError


@pytest.mark.parametrize("name", ["mnist5k", "digits"])
def test_embedded_split_is_stratified_disjoint_reproducible(name):
    train = load_dataset(name, True)
    test = load_dataset(name, False)
    again = load_dataset(name, False)
    other_seed = load_dataset(name, False, split_seed=1)
    assert torch.equal(test.images, again.images) and torch.equal(test.labels, again.labels)
    assert not torch.equal(test.images, other_seed.images)
    # disjoint: no test image is a training image (compare indices via the raw split)
    from robustbench_graph.data import files as data_files

    reader = "read_mnist5k" if name == "mnist5k" else "read_sklearn_digits"
    _, labels = getattr(data_files, reader)()
    tr, te = stratified_split(labels, 0.2, 0)
    assert not set(tr) & set(te) and len(tr) + len(te) == len(labels)
    # stratified: each class keeps its share within one image
    share = np.bincount(labels[te], minlength=10) / np.bincount(labels, minlength=10)
    assert np.all(np.abs(share - 0.2) < 0.01)
    assert len(train) == len(tr) and len(test) == len(te)


def test_mnist5k_sizes_and_range():
    train, test = load_dataset("mnist5k", True), load_dataset("mnist5k", False)
    assert (len(train), len(test)) == (4000, 1000)
    assert torch.equal(test.labels.bincount(), torch.full((10,), 100))
    x = test.float()
    assert x.dtype == torch.float32 and x.shape == (1000, 1, 28, 28)
    assert 0.0 <= x.min() and x.max() <= 1.0


@pytest.mark.parametrize("name", ["mnist5k", "digits"])
def test_declared_statistics_match_training_split(name):
    x = load_dataset(name, True).float()
    info = dataset_info(name)
    assert abs(x.mean().item() - info.mean[0]) < 1e-4
    assert abs(x.std().item() - info.std[0]) < 1e-4


def test_every_dataset_declares_its_shape():
    for entry in DATASETS:
        source = entry.factory()
        if isinstance(source, ImageFolderSource):  # its info comes from its files
            continue
        info = source.info
        assert info.num_classes in (10, 100)
        assert len(info.mean) == len(info.std) == info.input_shape[0]


def _write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.tobytes())


@pytest.mark.parametrize(("name", "folder"),
                         [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_idx_folder(tmp_path, name, folder):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    train = load_dataset(name, True, tmp_path)
    test = load_dataset(name, False, tmp_path)
    assert train.float().shape == (12, 1, 28, 28) and len(test) == 5
    assert test.labels.tolist() == [0, 1, 2, 3, 4]


def _write_cifar(folder, files, key, n, classes):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for f in files:
        batch = {"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
                 key: list(rng.integers(0, classes, n))}
        with open(folder / f, "wb") as fh:
            pickle.dump(batch, fh)


def test_cifar10_pickle_folder(tmp_path):
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    _write_cifar(tmp_path / "cifar-10-batches-py", files, "labels", 4, 10)
    train = load_dataset("cifar10", True, tmp_path)
    assert train.float().shape == (20, 3, 32, 32)
    assert len(load_dataset("cifar10", False, tmp_path)) == 4


def test_cifar100_pickle_folder(tmp_path):
    _write_cifar(tmp_path / "cifar-100-python", ["train", "test"], "fine_labels", 6, 100)
    assert load_dataset("cifar100", True, tmp_path).float().shape == (6, 3, 32, 32)


def test_svhn_mat_folder(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(2)
    for split, n in (("train", 7), ("test", 3)):
        savemat(tmp_path / f"{split}_32x32.mat",
                {"X": rng.integers(0, 256, (32, 32, 3, n)).astype(np.uint8),
                 "y": np.array([[10], [1], [2], [3], [4], [5], [6]])[:n]})
    test = load_dataset("svhn", False, tmp_path)
    assert test.float().shape == (3, 3, 32, 32) and test.labels.tolist() == [0, 1, 2]


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10", "cifar100", "svhn"])
def test_missing_files_give_one_clear_error(tmp_path, name):
    source = DATASETS.create(name)
    source = dataclasses.replace(source, system_dirs=())  # not the system's installed copy
    with pytest.raises(RbgError) as err:
        source.load(True, data_dir=tmp_path, download=False, split_seed=0)
    message = str(err.value)
    assert str(tmp_path) in message and "--download" in message and "\n" not in message


def test_cifar_pickle_with_code_is_refused(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(folder / "train", "wb") as fh:
        pickle.dump({"data": Evil(), "fine_labels": [0]}, fh)
    with pytest.raises(RbgError, match="was refused: refusing to load builtins.print"):
        load_dataset("cifar100", True, tmp_path)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(RbgError, match="valid: .*mnist5k"):
        load_dataset("imagenet", True)


def test_a_flat_data_dir_of_idx_files(tmp_path):
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 7), ("t10k", 4)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    assert len(load_dataset("fashion-mnist", True, tmp_path)) == 7
    assert load_dataset("mnist", False, tmp_path).labels.tolist() == [0, 1, 2, 3]


def test_image_data_is_a_torch_dataset():
    from torch.utils.data import DataLoader

    data = load_dataset("digits", False)
    image, label = data[3]
    assert image.shape == (1, 8, 8) and image.dtype == torch.float32
    assert 0 <= float(image.min()) and float(image.max()) <= 1 and label == int(data.labels[3])
    x, y = next(iter(DataLoader(data, batch_size=16, shuffle=False)))
    assert torch.equal(x, data.float()[:16]) and torch.equal(y, data.labels[:16])


def test_embedded_training_split_is_stored_shuffled():
    """mnist5k's file is sorted by class: its training split comes shuffled (seeded), so a
    user's loop without shuffling sees every class in its first batch; the test split keeps
    file order (per-image files index it)."""
    train = load_dataset("mnist5k", True)
    assert len(set(train.labels[:100].tolist())) == 10
    again = load_dataset("mnist5k", True)
    assert torch.equal(train.labels, again.labels) and torch.equal(train.images, again.images)
    other = load_dataset("mnist5k", True, split_seed=1)
    assert not torch.equal(other.labels[:100], train.labels[:100])
    test = load_dataset("mnist5k", False).labels
    assert torch.equal(test, test.sort(stable=True).values)  # file order, sorted by class


SYSTEM_FASHION = Path(FASHION_MNIST_SYSTEM_DIR)


@pytest.mark.skipif(not (SYSTEM_FASHION / "t10k-images-idx3-ubyte.gz").exists(),
                    reason=f"Fashion-MNIST not installed in {SYSTEM_FASHION} "
                           "(apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_from_the_debian_package(tmp_path):
    """The real 60,000 / 10,000 files, found without --data-dir (an empty one here)."""
    test = load_dataset("fashion-mnist", False, tmp_path / "empty")
    assert len(test) == 10_000 and np.bincount(test.labels.numpy()).tolist() == [1000] * 10
    train = load_dataset("fashion-mnist", True, tmp_path / "empty")
    assert len(train) == 60_000 and train.float().shape[1:] == (1, 28, 28)
    mean = float(train.float().mean())
    assert mean == pytest.approx(train.info.mean[0], abs=1e-3)  # the declared statistics


def _image_folder(root, classes=3, per_class=10, size=(8, 6), mode="RGB", seed=0):
    """Class folders of PNG images with random pixels; returns the arrays by class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    arrays = {}
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True)
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        arrays[c] = [rng.integers(0, 256, shape).astype(np.uint8) for _ in range(per_class)]
        for i, a in enumerate(arrays[c]):
            Image.fromarray(a, mode=mode).save(folder / f"{i:03d}.png")
    return arrays


def test_image_folder_with_a_stratified_split(tmp_path):
    from robustbench_graph.data import dataset_info

    arrays = _image_folder(tmp_path / "pets", classes=3, per_class=10)
    info = dataset_info("imagefolder", tmp_path / "pets")
    assert info.num_classes == 3 and info.input_shape == (3, 6, 8)
    every = np.stack([a for c in arrays for a in arrays[c]]).astype(np.float64) / 255
    assert info.mean == pytest.approx(tuple(every.mean((0, 1, 2))), abs=1e-4)
    assert info.std == pytest.approx(tuple(every.std((0, 1, 2))), abs=1e-4)
    train = load_dataset("imagefolder", True, tmp_path / "pets")
    test = load_dataset("imagefolder", False, tmp_path / "pets")
    assert len(train) == 24 and len(test) == 6
    assert np.bincount(test.labels.numpy()).tolist() == [2, 2, 2]  # stratified
    first = test.images[0].numpy().transpose(1, 2, 0)  # an image of class 0, as stored
    assert any(np.array_equal(first, a) for a in arrays[int(test.labels[0])])
    other = load_dataset("imagefolder", False, tmp_path / "pets", split_seed=1)
    assert not torch.equal(other.images, test.images)


def test_image_folder_with_train_and_test_folders_and_declared_statistics(tmp_path):
    import json

    _image_folder(tmp_path / "d" / "train", classes=2, per_class=4, mode="L")
    _image_folder(tmp_path / "d" / "test", classes=2, per_class=3, mode="L", seed=1)
    (tmp_path / "d" / "rbg-dataset.json").write_text(json.dumps({"mean": [0.5], "std": [0.25]}))
    test = load_dataset("imagefolder", False, tmp_path / "d")
    assert len(test) == 6 and test.info.input_shape == (1, 6, 8)  # greyscale: one channel
    assert test.info.mean == (0.5,) and test.info.std == (0.25,)
    assert len(load_dataset("imagefolder", True, tmp_path / "d")) == 8


@pytest.mark.parametrize(("make", "message"), [
    (lambda root: None, "is not a folder of class folders"),
    (lambda root: _image_folder(root, classes=1), r"has 1 class folder\(s\)"),
    (lambda root: (_image_folder(root, classes=2),
                   (root / "class_1" / "bad.png").write_text("not an image")),
     "bad.png is not a readable image"),
])
def test_image_folder_bad_input_is_one_clear_error(tmp_path, make, message):
    root = tmp_path / "imgs"
    make(root)
    with pytest.raises(RbgError, match=message):
        load_dataset("imagefolder", True, root)


def test_image_folder_of_images_of_different_sizes(tmp_path):
    from PIL import Image

    _image_folder(tmp_path / "imgs", classes=2, per_class=2)
    Image.new("RGB", (5, 5)).save(tmp_path / "imgs" / "class_1" / "small.png")
    with pytest.raises(RbgError, match=r"small.png is 5x5 pixels, the others 8x6; resize"):
        load_dataset("imagefolder", True, tmp_path / "imgs")


def test_train_and_attack_on_an_image_folder(tmp_path):
    import json

    import pandas as pd

    from conftest import cli

    _image_folder(tmp_path / "imgs", classes=3, per_class=12, mode="L", size=(8, 8))
    data = ["--data-dir", tmp_path / "imgs"]
    result = cli("train", "--dataset", "imagefolder", *data, "--epochs", "1", "--out",
                 tmp_path / "runs", "--width", "4", "--feature-dim", "8")
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    record = json.loads((run / "config.json").read_text())
    assert record["dataset_info"]["num_classes"] == 3
    assert record["dataset_info"]["input_shape"] == [1, 8, 8]
    result = cli("attack", "--runs", run, "--suite", "clean,gaussian", *data, "-p",
                 "gaussian.draws=2")
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(run / "results.csv").perturbation) == {"clean", "gaussian"}
    _image_folder(tmp_path / "other", classes=4, per_class=3, mode="L", size=(8, 8))
    result = cli("attack", "--runs", run, "--suite", "clean", "--overwrite", "--data-dir",
                 tmp_path / "other")
    assert result.exit_code == 1 and "is not the dataset the run was made for" in result.output
