"""rbg import: outside classifiers as run folders that attack, report and smoothness use."""

from __future__ import annotations

import hashlib
import json
import pickle
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from robustbench_graph.data import load_dataset
from robustbench_graph.errors import RbgError
from robustbench_graph.models.external import ExternalModel
from robustbench_graph.perturbations import suite_names
from robustbench_graph.rundir.runs import load_run

from conftest import cli


@pytest.fixture(scope="module", autouse=True)
def _own_config_dir(tmp_path_factory):
    """Trust records go to a folder of this module's, never the user's ~/.config."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RBG_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
        yield

# A network written here, not one of rbg's: two convolutions on 8x8 digits.
NET_SOURCE = textwrap.dedent('''
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self, width=8, classes=10, normalized=False):
            super().__init__()
            self.normalized = normalized
            self.body = nn.Sequential(
                nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Flatten())
            self.fc = nn.Linear(width * 64, classes)

        def forward(self, x):
            if not self.normalized:  # normalises inside itself: takes [0, 1] pixels
                x = (x - 0.3055) / 0.3761
            return self.fc(self.body(x))


    def make_net(width=8, classes=10, normalized=False):
        return Net(width, classes, normalized)


    def make_features(width=8):
        return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU())
''')

FAST = ["-p", "autoattack.version=cheap",
        "-p", "gaussian.draws=2", "-p", "gaussian-iid.draws=2", "-p", "dropout.repeats=2",
        "-p", "dropout.p=0.25,0.5", "-p", "deepfool.samples=20", "-p", "pgd.steps=5",
        "-p", "mnist-c.corruption=contrast", "-p", "corruptions.corruption=contrast",
        "-p", "curvature.probes=2", "-p", "lipschitz.draws=2", "-p", "lipschitz.images=50",
        "--samples", "60", "--device", "cpu"]


def _trained_net(tmp_path, normalized=False, epochs=15):
    """The network above, trained briefly on digits by a plain loop of our own."""
    (tmp_path / "net.py").write_text(NET_SOURCE)
    namespace: dict = {}
    exec(compile(NET_SOURCE, "net.py", "exec"), namespace)
    torch.manual_seed(0)
    net = namespace["make_net"](normalized=normalized)
    data = load_dataset("digits", True)
    x, y = data.float(), data.labels
    if normalized:
        x = (x - 0.3055) / 0.3761
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(epochs):
        for i in range(0, len(x), 100):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[i:i + 100]), y[i:i + 100]).backward()
            opt.step()
    return net.eval()


def _own_accuracy(net, normalized=False, samples=None):
    test = load_dataset("digits", False)
    x, y = test.float(), test.labels
    if samples is not None:
        rows = torch.arange(0, len(x), len(x) // samples)[:samples]
        x, y = x[rows], y[rows]
    if normalized:
        x = (x - 0.3055) / 0.3761
    with torch.no_grad():
        return float((net(x).argmax(1) == y).double().mean())


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The in-test network trained, saved as a state_dict, imported from its file."""
    tmp = tmp_path_factory.mktemp("import")
    net = _trained_net(tmp)
    torch.save(net.state_dict(), tmp / "weights.pt")
    result = cli("import", tmp / "runs" / "mine", "--model-file", f"{tmp / 'net.py'}:make_net",
                 "--kw", "width=8", "--weights", tmp / "weights.pt", "--dataset", "digits",
                 "--blocks", "body.1,body.3")
    assert result.exit_code == 0, result.output
    return tmp, net


def test_a_model_from_a_test_file_runs_the_whole_suite_and_the_report(imported):
    tmp, net = imported
    runs = tmp / "runs"
    result = cli("attack", "--runs", runs, "--suite", "all", *FAST)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(runs / "mine" / "results.csv")
    assert set(table.perturbation) == set(suite_names("all", "grey"))
    assert set(table.model) == {"net.py:make_net"} and set(table.loss) == {"imported"}
    clean = table[(table.perturbation == "clean") & (table.metric == "accuracy")].value.item()
    assert clean == pytest.approx(_own_accuracy(net, samples=60), abs=1e-9) and clean > 0.8
    pgd = table[(table.perturbation == "pgd") & (table.metric == "accuracy")]
    assert pgd.value.max() <= clean  # an attack never helps
    result = cli("report", "--runs", runs, "--out", tmp / "report", "--no-plots")
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(tmp / "report" / "summary.csv")
    assert set(summary.method) == {"net.py:make_net (imported)"}
    result = cli("smoothness", runs, "--out", tmp / "smooth", "--limit", "200")
    assert result.exit_code == 0, result.output
    smooth = pd.read_csv(tmp / "smooth" / "smoothness.csv")
    assert sorted(smooth.layer.unique()) == [1, 2]  # the network's two ReLUs


def test_provenance_and_a_self_contained_folder(imported):
    tmp, _ = imported
    run = tmp / "runs" / "mine"
    record = json.loads((run / "config.json").read_text())
    info = record["imported"]
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert info["source"]["sha256"] == sha(tmp / "net.py") == sha(run / "model_source.py")
    assert info["source"]["factory"] == "make_net" and info["source"]["kwargs"] == {"width": 8}
    assert info["weights"]["sha256"] == sha(tmp / "weights.pt")
    assert info["weights"]["format"] == "torch state_dict"
    assert info["input"] == {"space": "pixels", "mean": [0.3055], "std": [0.3761]}
    assert info["blocks"] == ["body.1", "body.3"] and info["relu_taps"] == 2
    assert json.loads((run / "status.json").read_text())["status"] == "complete"
    (tmp / "net.py").rename(tmp / "moved.py")  # the folder's copy is what runs
    try:
        assert isinstance(load_run(run).model, ExternalModel)
    finally:
        (tmp / "moved.py").rename(tmp / "net.py")


def test_a_changed_source_copy_is_refused(imported, tmp_path):
    import shutil

    tmp, _ = imported
    copy = tmp_path / "mine"
    shutil.copytree(tmp / "runs" / "mine", copy)
    (copy / "model_source.py").write_text(NET_SOURCE + "\n# edited\n")
    with pytest.raises(RbgError, match="differs from the imported source"):
        load_run(copy)


def test_a_normalized_input_model_from_a_module_with_safetensors(tmp_path, monkeypatch):
    """``--model MODULE:FACTORY`` and ``--input normalized``: rbg normalises with the
    declared statistics, and both FGSM spaces see the same function."""
    net = _trained_net(tmp_path, normalized=True, epochs=5)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()},
              str(tmp_path / "w.safetensors"))
    monkeypatch.syspath_prepend(str(tmp_path))
    result = cli("import", tmp_path / "run", "--model", "net:make_net", "--kw",
                 "normalized=true", "--weights", tmp_path / "w.safetensors", "--dataset",
                 "digits", "--input", "normalized", "--mean", "0.3055", "--std", "0.3761",
                 "--seed", "3", "--method", "outside")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["seed"] == 3 and record["method"] == "outside"
    assert record["imported"]["source"]["module"] == "net"
    assert record["imported"]["weights"]["format"] == "safetensors"
    assert record["imported"]["blocks"] == ["body"]  # default: weighted children but the last
    model = load_run(tmp_path / "run").model
    x = load_dataset("digits", False).float()[:16]
    with torch.no_grad():
        assert torch.allclose(model(x), net((x - 0.3055) / 0.3761))
        assert torch.allclose(model.forward_normalized(model.normalize(x)), model(x))
    result = cli("attack", "--runs", tmp_path / "run", "--suite", "clean", "--device", "cpu")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "run" / "results.csv")
    assert table.value.item() == pytest.approx(_own_accuracy(net, normalized=True), abs=1e-9)


def test_a_pixel_model_sees_the_same_function_after_normalisation(imported):
    tmp, net = imported
    model = load_run(tmp / "runs" / "mine").model
    x = load_dataset("digits", False).float()[:16]
    with torch.no_grad():
        assert torch.allclose(model(x), net(x))
        assert torch.allclose(model.forward_normalized(model.normalize(x)), net(x), atol=1e-5)


def _write_cifar10(root, n=8):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
                 "labels": list(rng.integers(0, 10, n))}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh)


def test_torchvision_resnet18_runs_the_whole_suite_and_the_report(tmp_path):
    """A torchvision ResNet-18 (random weights) on CIFAR-10-shaped files in torchvision's
    format."""
    import torchvision

    _write_cifar10(tmp_path / "data", n=12)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), tmp_path / "r18.pt")
    data = ["--data-dir", tmp_path / "data"]
    result = cli("import", tmp_path / "runs" / "r18", "--torchvision", "resnet18", "--kw",
                 "num_classes=10", "--weights", tmp_path / "r18.pt", "--dataset", "cifar10",
                 "--blocks", "layer1,layer2,layer3,layer4")
    assert result.exit_code == 0, result.output
    result = cli("attack", "--runs", tmp_path / "runs", "--suite", "all", *FAST, *data)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "runs" / "r18" / "results.csv")
    assert set(table.perturbation) == set(suite_names("all", "colour"))
    assert set(table.model) == {"torchvision.resnet18"}
    result = cli("report", "--runs", tmp_path / "runs", "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report" / "index.html").is_file()
    result = cli("smoothness", tmp_path / "runs", "--out", tmp_path / "smooth",
                 "--batch-size", "12", *data)
    assert result.exit_code == 0, result.output
    smooth = pd.read_csv(tmp_path / "smooth" / "smoothness.csv")
    assert smooth.layer.nunique() == 17  # the stem's ReLU and two calls per basic block


@pytest.fixture()
def bad(tmp_path):
    (tmp_path / "net.py").write_text(NET_SOURCE)
    namespace: dict = {}
    exec(compile(NET_SOURCE, "net.py", "exec"), namespace)
    torch.manual_seed(0)
    net = namespace["make_net"]()
    torch.save(net.state_dict(), tmp_path / "w.pt")
    torch.save(namespace["make_features"](), tmp_path / "whole.pt")  # a pickled module
    torch.save(namespace["make_features"]().state_dict(), tmp_path / "features.pt")
    return tmp_path


@pytest.mark.parametrize(("args", "message"), [
    (["--model-file", "{d}/net.py:make_nett", "--weights", "{d}/w.pt"],
     "has no factory 'make_nett' (it defines: Net, make_features, make_net)"),
    (["--model-file", "{d}/net.py:make_net", "--kw", "width=4", "--weights", "{d}/w.pt"],
     "does not fit the model: tensors 5 of another shape (body.0.weight (8, 1, 3, 3) vs "
     "(4, 1, 3, 3)"),
    (["--model-file", "{d}/net.py:make_net", "--weights", "{d}/whole.pt"],
     "holds pickled Python objects (e.g. a whole model), which rbg does not load"),
    (["--model-file", "{d}/net.py:make_features", "--weights", "{d}/features.pt"],
     "the model's output for a batch of 2 is (2, 8, 8, 8), expected (batch, classes) = "
     "(2, 10)"),
    (["--model-file", "{d}/net.py:make_net", "--kw", "classes=7", "--weights",
      "{d}/w.pt"], "does not fit the model"),
    (["--model-file", "{d}/missing.py:make_net", "--weights", "{d}/w.pt"],
     "missing.py does not exist"),
    (["--torchvision", "resnet19", "--weights", "{d}/w.pt"],
     "unknown torchvision architecture 'resnet19'"),
    (["--model-file", "{d}/net.py:make_net", "--torchvision", "resnet18", "--weights",
      "{d}/w.pt"], "exactly one of --model-file"),
    (["--model-file", "{d}/net.py:make_net", "--weights", "{d}/w.pt", "--blocks", "head"],
     "the model has no module 'head' for --blocks (its top-level modules: body, fc)"),
    (["--model-file", "{d}/net.py:make_net", "--weights", "{d}/w.pt", "--input", "raw"],
     "unknown --input 'raw'"),
    (["--model", "no_such_module_here:make", "--weights", "{d}/w.pt"],
     "module 'no_such_module_here' cannot be imported"),
    (["--model-file", "{d}/net.py:make_net", "--weights", "{d}/net.py"],
     "is neither safetensors nor a torch state_dict file"),
    (["--model-file", "{d}/net.py:make_net"], "--weights is required"),
])
def test_bad_input_is_one_line_and_writes_nothing(bad, args, message):
    run = bad / "runs" / "new"
    result = cli("import", run, *[a.format(d=bad) for a in args], "--dataset", "digits")
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output
    assert not run.exists() and not (bad / "runs").exists()


def test_an_existing_folder_is_kept_unless_overwrite(imported, tmp_path):
    tmp, _ = imported
    args = ["--model-file", f"{tmp / 'net.py'}:make_net", "--weights", tmp / "weights.pt",
            "--dataset", "digits"]
    assert cli("import", tmp_path / "run", *args).exit_code == 0
    (tmp_path / "run" / "results.csv").write_text("keep me")
    result = cli("import", tmp_path / "run", *args)
    assert result.exit_code == 1 and "already exists and is not empty" in result.output
    assert (tmp_path / "run" / "results.csv").read_text() == "keep me"
    assert cli("import", tmp_path / "run", *args, "--overwrite").exit_code == 0
    assert not (tmp_path / "run" / "results.csv").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary folder left
