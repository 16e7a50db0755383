"""rbg import from the ecosystem: timm architectures, RobustBench-format checkpoints, ONNX
files, and the normalisation check (docs/importing.md)."""

from __future__ import annotations

import json
import sys
import textwrap
import warnings

import pandas as pd
import pytest
import torch
from torch import nn

from robustbench_graph.data import load_dataset

from conftest import cli

timm = pytest.importorskip("timm")
onnx2torch = pytest.importorskip("onnx2torch")

MEAN, STD = 0.3055, 0.3761  # digits' statistics, rbg's declared ones
SUITE = "clean,fgsm-before-norm,pgd"
SAMPLES = 60
FAST = ["-p", "pgd.steps=5", "--samples", str(SAMPLES), "--device", "cpu"]

NET_SOURCE = textwrap.dedent('''
    import torch
    from torch import nn


    class Net(nn.Module):
        """Two convolutions on 8x8 digits, normalising inside itself."""

        def __init__(self, rounding=False):
            super().__init__()
            self.rounding = rounding
            self.body = nn.Sequential(
                nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Flatten())
            self.fc = nn.Linear(8 * 64, 10)

        def forward(self, x):
            if self.rounding:  # a quantising step: no useful gradient
                x = torch.round(x * 4) / 4
            return self.fc(self.body((x - 0.3055) / 0.3761))


    def make_net(rounding=False):
        return Net(rounding)
''')


@pytest.fixture(scope="module", autouse=True)
def _own_config_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RBG_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
        yield


def _train(net, normalized, epochs):
    """A plain loop of our own on digits' training split, in the given input space."""
    data = load_dataset("digits", True)
    x, y = data.float(), data.labels.long()
    if normalized:
        x = (x - MEAN) / STD
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for _ in range(epochs):
        for i in range(0, len(x), 100):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[i:i + 100]), y[i:i + 100]).backward()
            opt.step()
    return net.eval()


def _accuracy(net, normalized, samples=SAMPLES):
    """The network's accuracy on the test images rbg attack --samples picks."""
    test = load_dataset("digits", False)
    rows = torch.arange(0, len(test), len(test) // samples)[:samples]
    x, y = test.float(rows), test.labels[rows]
    if normalized:
        x = (x - MEAN) / STD
    with torch.no_grad():
        return float((net(x).argmax(1) == y).double().mean())


def _timm_net(normalized):
    torch.manual_seed(0)
    net = timm.create_model("test_resnet", pretrained=False, num_classes=10, in_chans=1)
    return _train(net, normalized, epochs=3)


def _in_test_net(tmp, rounding=False):
    (tmp / "net.py").write_text(NET_SOURCE)
    namespace: dict = {}
    exec(compile(NET_SOURCE, "net.py", "exec"), namespace)
    torch.manual_seed(0)
    return _train(namespace["make_net"](rounding=rounding), normalized=False, epochs=15)


def _attack_and_report(runs, out):
    result = cli("attack", "--runs", runs, "--suite", SUITE, *FAST)
    assert result.exit_code == 0, result.output
    (run,) = runs.iterdir()
    table = pd.read_csv(run / "results.csv")
    assert set(table.perturbation) == set(SUITE.split(","))
    method = json.loads((run / "config.json").read_text())["method"]
    result = cli("report", "--runs", runs, "--out", out, "--no-plots", "--baseline", method)
    if result.exit_code == 0:
        summary = pd.read_csv(out / "summary.csv")
        assert set(summary.method) == {method}
    return table, result


def _value(table, perturbation, reduce="min"):
    rows = table[(table.perturbation == perturbation) & (table.metric == "accuracy")]
    return float(getattr(rows.value, reduce)())


def _imported(run):
    return json.loads((run / "config.json").read_text())["imported"]


@pytest.fixture(scope="module")
def timm_weights(tmp_path_factory):
    """test_resnet (timm) trained on normalised digits, saved as a state_dict."""
    tmp = tmp_path_factory.mktemp("timm")
    net = _timm_net(normalized=True)
    torch.save(net.state_dict(), tmp / "timm.pt")
    return tmp, net


def test_a_timm_model_is_imported_attacked_and_reported(timm_weights):
    tmp, net = timm_weights
    runs = tmp / "runs"
    result = cli("import", runs / "timm", "--timm", "test_resnet", "--kw", "num_classes=10",
                 "--kw", "in_chans=1", "--weights", tmp / "timm.pt", "--dataset", "digits")
    assert result.exit_code == 0, result.output
    record = _imported(runs / "timm")
    assert record["source"]["kind"] == "timm" and record["source"]["timm"] == timm.__version__
    # timm's networks take normalised inputs; its cfg's 3-channel mean does not fit digits
    assert record["input"] == {"space": "normalized", "mean": [MEAN], "std": [STD]}
    assert record["input_statistics"] == "dataset"
    assert record["normalisation_check"]["accuracy_declared"] > 0.9
    table, report = _attack_and_report(runs, tmp / "report")
    assert set(table.model) == {"timm.test_resnet"}
    clean = _value(table, "clean")
    assert clean == pytest.approx(_accuracy(net, normalized=True), abs=1e-9) and clean > 0.8
    assert _value(table, "pgd") < clean  # the attack acts through the imported network
    print(f"timm clean {clean:.4f} pgd min {_value(table, 'pgd'):.4f}")
    assert report.exit_code == 0, report.output


def test_a_timm_cfg_declares_the_statistics_where_they_fit():
    from robustbench_graph.models.timm_source import declared_statistics

    rgb = timm.create_model("test_resnet", pretrained=False)
    assert declared_statistics(rgb, 3) == (list(rgb.pretrained_cfg["mean"]),
                                           list(rgb.pretrained_cfg["std"]))
    assert declared_statistics(rgb, 1) is None  # 3 values for 1 channel: the dataset's


def test_a_robustbench_checkpoint_with_a_module_prefix(tmp_path):
    net = _in_test_net(tmp_path)
    state = {f"module.{k}": v for k, v in net.state_dict().items()}  # nn.DataParallel's
    torch.save({"state_dict": state, "epoch": 15, "best_acc": 0.97}, tmp_path / "ckpt.pt")
    runs = tmp_path / "runs"
    result = cli("import", runs / "rb", "--model-file", f"{tmp_path / 'net.py'}:make_net",
                 "--weights", tmp_path / "ckpt.pt", "--dataset", "digits")
    assert result.exit_code == 0, result.output
    weights = _imported(runs / "rb")["weights"]
    assert weights["unwrapped"] == ["unwrapped 'state_dict'", "stripped 'module.'"]
    table, report = _attack_and_report(runs, tmp_path / "report")
    assert _value(table, "clean") == pytest.approx(_accuracy(net, False), abs=1e-9)
    assert report.exit_code == 0, report.output
    # keys that do not fit are named without the prefix, and nothing is written
    state.pop("module.fc.bias")
    torch.save({"state_dict": state}, tmp_path / "bad.pt")
    result = cli("import", runs / "bad", "--model-file", f"{tmp_path / 'net.py'}:make_net",
                 "--weights", tmp_path / "bad.pt", "--dataset", "digits")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path / 'bad.pt'} does not fit the model: tensors 1 missing (fc.bias)"]
    assert not (runs / "bad").exists()


def _export(net, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(net, (torch.rand(2, 1, 8, 8),), str(path), dynamo=False,
                          input_names=["x"], output_names=["logits"], opset_version=17,
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})


def test_an_onnx_export_attacks_as_its_torch_original(tmp_path):
    net = _in_test_net(tmp_path)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    _export(net, tmp_path / "net.onnx")
    runs_torch, runs_onnx = tmp_path / "torch", tmp_path / "onnx"
    result = cli("import", runs_torch / "t", "--model-file", f"{tmp_path / 'net.py'}:make_net",
                 "--weights", tmp_path / "w.pt", "--dataset", "digits")
    assert result.exit_code == 0, result.output
    result = cli("import", runs_onnx / "o", "--onnx", tmp_path / "net.onnx", "--dataset",
                 "digits")
    assert result.exit_code == 0, result.output
    assert "not white-box" not in result.output
    assert (runs_onnx / "o" / "model.onnx").read_bytes() == (tmp_path / "net.onnx").read_bytes()
    original, _ = _attack_and_report(runs_torch, tmp_path / "report_t")
    converted, report = _attack_and_report(runs_onnx, tmp_path / "report_o")
    assert report.exit_code == 0, report.output
    assert set(converted.model) == {"onnx.net.onnx"}
    assert _value(converted, "clean") == _value(original, "clean") > 0.8
    for family in ("pgd", "fgsm-before-norm"):
        for eps in sorted(set(original[original.perturbation == family].param_value)):
            ours, theirs = (t[(t.perturbation == family) & (t.param_value == eps)]
                            for t in (converted, original))
            assert abs(_value(ours, family) - _value(theirs, family)) <= 1 / SAMPLES + 1e-9, \
                (family, eps)
            print(f"{family} eps={eps}: onnx {_value(ours, family):.4f} torch "
                  f"{_value(theirs, family):.4f}")
    print(f"clean: onnx {_value(converted, 'clean'):.4f} torch {_value(original, 'clean'):.4f}")


def test_an_onnx_model_without_gradients_says_so_and_runs_gradient_free(tmp_path):
    net = _in_test_net(tmp_path, rounding=True)
    _export(net, tmp_path / "round.onnx")
    runs = tmp_path / "runs"
    result = cli("import", runs / "r", "--onnx", tmp_path / "round.onnx", "--dataset",
                 "digits")
    assert result.exit_code == 0, result.output
    assert "not white-box (its input gradients are all zero" in result.output
    result = cli("attack", "--runs", runs, "--suite", "clean,gaussian", "-p",
                 "gaussian.draws=2", *FAST[2:])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(runs / "r" / "results.csv")
    assert _value(table, "clean") == pytest.approx(_accuracy(net, False), abs=1e-9)
    assert "gaussian" in set(table.perturbation)
    result = cli("attack", "--runs", runs, "--suite", "pgd", *FAST)
    assert result.exit_code != 0 and "not white-box" in result.output, result.output
    assert "Traceback" not in result.output


def test_the_normalisation_check_refuses_the_wrong_space_and_force_accepts(timm_weights):
    tmp, _ = timm_weights
    args = ["--timm", "test_resnet", "--kw", "num_classes=10", "--kw", "in_chans=1",
            "--weights", tmp / "timm.pt", "--dataset", "digits"]
    run = tmp / "check" / "pixels"
    result = cli("import", run, *args, "--input", "pixels")  # trained on normalised inputs
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "looks imported in the wrong input space" in lines[0]
    assert "with --input pixels (chance 10.0%)" in lines[0] and "--force" in lines[0]
    assert not run.exists() and not run.parent.exists()
    result = cli("import", run, *args, "--input", "pixels", "--force")
    assert result.exit_code == 0, result.output
    assert "note: --force: imported as declared" in result.output
    check = _imported(run)["normalisation_check"]
    assert check["wrong_space"] and check["accuracy_other"] > 0.9
    print(lines[0])


def test_the_normalisation_check_catches_the_reverse(tmp_path):
    torch.save(_timm_net(normalized=False).state_dict(), tmp_path / "pixels.pt")
    run = tmp_path / "runs" / "norm"
    result = cli("import", run, "--timm", "test_resnet", "--kw", "num_classes=10", "--kw",
                 "in_chans=1", "--weights", tmp_path / "pixels.pt", "--dataset", "digits")
    assert result.exit_code == 1  # timm's default, --input normalized, is wrong here
    assert "with --input normalized" in result.output and "with --input pixels" in result.output
    assert not run.exists()
    print(result.output.strip())


def test_near_and_far_are_measured_from_chance_to_perfect():
    from robustbench_graph.rundir.normalisation_check import CheckResult

    wrong = CheckResult(300, "pixels", 0.37, 0.71, 0.1)  # 30% and 68% of the way
    assert wrong.wrong_space and wrong.other == "normalized"
    assert "37.0% accurate with --input pixels (chance 10.0%) but 71.0% with --input " \
           "normalized" in wrong.line("digits")
    assert not CheckResult(300, "pixels", 0.41, 0.95, 0.1).wrong_space  # not near chance
    assert not CheckResult(300, "normalized", 0.12, 0.69, 0.1).wrong_space  # not far above
    assert not CheckResult(300, "pixels", 0.1, 0.1, 0.1).wrong_space  # an untrained network
    assert not CheckResult(300, "normalized", 0.55, 0.8, 0.5).wrong_space  # 2 classes: 83%
    assert CheckResult(300, "normalized", 0.55, 0.9, 0.5).wrong_space


@pytest.mark.parametrize("module, flag", [("timm", ["--timm", "test_resnet"]),
                                          ("onnx2torch", ["--onnx", "x.onnx"])])
def test_a_missing_extra_is_one_line(tmp_path, monkeypatch, module, flag):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    (tmp_path / "w.pt").write_bytes(b"")
    result = cli("import", tmp_path / "run", *flag, "--weights", tmp_path / "w.pt",
                 "--dataset", "digits")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    extra = "timm" if module == "timm" else "onnx"
    assert len(lines) == 1 and f"pip install 'robustbench_graph[{extra}]'" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["--onnx", "{d}/corrupt.onnx"], "corrupt.onnx is not a valid ONNX model"),
    (["--timm", "resnet_nineteen", "--weights", "{d}/corrupt.onnx"],
     "unknown timm architecture 'resnet_nineteen'"),
    (["--onnx", "{d}/corrupt.onnx", "--kw", "a=1"], "an ONNX file has none"),
])
def test_bad_ecosystem_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x07garbage that is not protobuf")
    run = tmp_path / "runs" / "new"
    result = cli("import", run, *[a.format(d=tmp_path) for a in args], "--dataset", "digits")
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "runs").exists()
