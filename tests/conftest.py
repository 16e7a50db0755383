"""Shared fixtures: tiny real data (scikit-learn digits) and quickly trained runs."""

from __future__ import annotations

import importlib.util
import math
import os
import tempfile
import warnings
from pathlib import Path
from types import ModuleType

import pytest
import torch

warnings.filterwarnings("ignore", category=DeprecationWarning, module="foolbox")
torch.set_num_threads(2)
# Trust records of imported models (rundir/trust.py) go to a folder of this test session,
# never to the user's ~/.config.
os.environ.setdefault("RBG_CONFIG_DIR", tempfile.mkdtemp(prefix="rbg-config-"))


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smallcnn trained 20 epochs on digits (a few seconds); returns its run folder."""
    from robustbench_graph.config import TrainConfig
    from robustbench_graph.train import plan_runs, train_run

    out = tmp_path_factory.mktemp("runs")
    (spec,) = plan_runs(TrainConfig(dataset="digits", epochs=20), [0], out)
    train_run(spec, device=torch.device("cpu"))
    return spec.run_dir


class RecordingModel(torch.nn.Module):
    """Wraps a model, forwards its attributes (normalize, head, taps) and records every input
    it classifies: ``seen`` (copies) and their range ``lo``/``hi``."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.seen, self.lo, self.hi = model, [], math.inf, -math.inf
        self.normalize, self.head = model.normalize, model.head

    def __getattr__(self, name: str):  # noqa: ANN204
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.model, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen = x.detach().clone()
        self.seen.append(seen)
        self.lo, self.hi = min(self.lo, float(seen.min())), max(self.hi, float(seen.max()))
        return self.model(x)


def cli(*args: str):  # noqa: ANN201
    """Invoke the rbg CLI in-process; returns the click Result."""
    from typer.testing import CliRunner

    from robustbench_graph.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def load_script(name: str) -> ModuleType:
    """``scripts/NAME.py`` as a module (the scripts are not a package)."""
    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY_NET = """\
from torch import nn


def make(hidden=16):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(),
                         nn.Linear(hidden, 10))
"""


def write_tiny_model(folder: Path) -> Path:
    """``folder``/net.py (a factory ``make`` of an 8x8 digits MLP) and weights ``w.pt`` that
    fit it, for import tests; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.py").write_text(TINY_NET)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(),
                              torch.nn.Linear(16, 10))
    torch.save(net.state_dict(), folder / "w.pt")
    return folder


class PassCounter:
    """Rows through a network's last layer, forward and backward (the passes a perturbation
    family declares, :meth:`Perturbation.passes`)."""

    def __init__(self, layer: torch.nn.Module) -> None:
        self.forward = self.backward = 0
        self.handle = layer.register_forward_hook(self._forward)

    def _forward(self, _module, _inputs, out: torch.Tensor) -> None:  # noqa: ANN001
        self.forward += len(out)
        if out.requires_grad:
            out.register_hook(self._backward)

    def _backward(self, grad: torch.Tensor) -> None:
        self.backward += len(grad)


def counted_passes(family, run, data) -> tuple[int, int]:  # noqa: ANN001
    """(forward, backward) rows through ``run``'s network while ``family`` measures every
    cell on ``data``."""
    from robustbench_graph.config import ImageSubset
    from robustbench_graph.perturbations import EvalContext

    ctx = EvalContext(run.model, data, torch.device("cpu"), run.name, batch_size=50)
    counter = PassCounter(run.model.head)
    try:
        for cell in family.cells(ImageSubset()):
            family.measure(cell, ctx)
    finally:
        counter.handle.remove()
    return counter.forward, counter.backward
