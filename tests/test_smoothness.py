"""Per-layer smoothness diagnostic, ``rbg smoothness``, and training the graph losses."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from robustbench_graph.cli import app
from robustbench_graph.data import load_dataset
from robustbench_graph.diagnostics.smoothness import COLUMNS, collect_runs, layer_smoothness
from robustbench_graph.errors import RbgError
from robustbench_graph.graph import label_smoothness
from robustbench_graph.losses.gsl import knn_accuracy
from robustbench_graph.models import capture, create_model
from robustbench_graph.models.heads import CentroidHead
from robustbench_graph.rundir.folder import find_runs
from robustbench_graph.rundir.runs import load_run

RUNNER = CliRunner()


def _invoke(*args: object):  # noqa: ANN202
    return RUNNER.invoke(app, [str(a) for a in args])


def _train(out: Path, *extra: str) -> Path:
    result = _invoke("train", "--dataset", "digits", "--epochs", "1", "--seeds", "0",
                     "--out", out, "--device", "cpu", *extra)
    assert result.exit_code == 0, result.output
    (run,) = find_runs(out)
    return run


CONFIGS = {
    "laplacian": ("--loss", "laplacian"),
    "laplacian-parseval": ("--loss", "laplacian", "--parseval"),
    "gsl": ("--loss", "gsl"),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each graph-loss configuration trained once, lazily (1 epoch on digits)."""
    root = tmp_path_factory.mktemp("graph_runs")

    class Lazy(dict):
        def __missing__(self, key: str) -> Path:
            self[key] = _train(root / key, *CONFIGS[key])
            return self[key]

    return Lazy()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_train_graph_losses_gives_loadable_run(trained: dict[str, Path], name: str) -> None:
    extra = CONFIGS[name]
    run_dir = trained[name]
    run = load_run(run_dir)
    assert run.train_config.loss == extra[1]
    assert run.train_config.parseval == ("--parseval" in extra)
    assert getattr(run.model, "parseval", False) == ("--parseval" in extra)
    test = load_dataset("digits", False)
    with torch.no_grad():
        acc = float((run.model(test.float()).argmax(1) == test.labels).float().mean())
    assert acc > 0.3
    if extra[1] == "gsl":
        assert isinstance(run.model.head, CentroidHead)
        assert run.model.head.centroids.abs().sum() > 0
        train = load_dataset("digits", True)
        assert knn_accuracy(run.model, train, test) > 0.3


def test_layer_smoothness_matches_direct_computation() -> None:
    data = load_dataset("digits", False)
    torch.manual_seed(0)
    model = create_model("smallcnn", data.info, width=4, feature_dim=8).eval()
    rows = layer_smoothness(model, data, batch_size=50, limit=100, powers=(1, 2))
    assert [(r[0], r[1]) for r in rows] == [(layer, m) for layer in (1, 2, 3) for m in (1, 2)]
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:100]
    sub = data.subset(order)
    expected = []
    for start in (0, 50):
        x, y = sub.float(slice(start, start + 50)), sub.labels[start:start + 50]
        with torch.no_grad(), capture(model.relu_taps) as outs:
            model(x)
        expected.append([float(label_smoothness(o.double(), y, 10, m=2)) for o in outs])
    got = {layer: v for layer, m, v in rows if m == 2}
    for layer in (1, 2, 3):
        mean = (expected[0][layer - 1] + expected[1][layer - 1]) / 2
        assert got[layer] == pytest.approx(mean, rel=1e-9)


def test_collect_runs_errors(tmp_path: Path) -> None:
    with pytest.raises(RbgError, match="no run folders"):
        collect_runs([tmp_path])
    with pytest.raises(RbgError, match="does not exist"):
        collect_runs([tmp_path / "missing"])


def test_cli_smoothness(trained: dict[str, Path], tmp_path: Path) -> None:
    run_dir = trained["laplacian"]
    out = tmp_path / "smooth"
    result = _invoke("smoothness", run_dir.parent, "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out / "smoothness.csv")
    assert tuple(df.columns) == COLUMNS
    assert len(df) == 3 * 2  # smallcnn: 3 ReLU taps x m in {1, 2}
    assert set(df["run"]) == {run_dir.name} and set(df["seed"]) == {0}
    assert (df["value"] > 0).all()
    assert (out / "smoothness.png").stat().st_size > 0


def test_cli_smoothness_without_runs(tmp_path: Path) -> None:
    result = _invoke("smoothness", tmp_path, "--out", tmp_path / "o")
    assert result.exit_code == 1
    assert "no run folders" in result.output
