"""Declarations read without torch (issue #32): the model registry declares each network from
its module's source and imports the module when the network is built; a loss is a plain
class whose instances are ``nn.Module`` objects (``lazy.LazyModuleBase``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from robustbench_graph.errors import RbgError
from robustbench_graph.lazy import LazyModuleBase
from robustbench_graph.registry import Registry


def _python(code: str) -> list[str]:
    """The lines ``code`` prints in a fresh interpreter (nothing imported yet)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_a_declared_entry_is_replaced_by_its_registration_when_loaded() -> None:
    reg: Registry = Registry("thing")
    reg.declare("json", "the JSON module's dumps", "json")
    assert reg.names() == ["json"] and reg.get("json").description == "the JSON module's dumps"
    with pytest.raises(RbgError, match="'json' is declared in json but not registered"):
        reg.load("json")  # json has no registration of it

    def size(obj: list) -> int:
        return len(obj)

    reg.register("json", "the JSON module's dumps")(size)  # what importing the module does
    assert reg.load("json").factory is size and reg.create("json", obj=[1, 2]) == 2
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("json", "again")(size)
    with pytest.raises(ValueError, match="registered twice"):
        reg.declare("json", "again", "json")


def test_the_declared_models_are_those_their_modules_register() -> None:
    # a fresh process: the declarations before any model module is imported, then the
    # registrations after each is imported
    code = ("import sys, importlib\n"
            "from robustbench_graph.models import MODELS\n"
            "declared = {e.name: (e.description, MODELS._declared[e.name]) for e in MODELS}\n"
            "assert 'torch' not in sys.modules\n"
            "for name, (_, module) in declared.items(): importlib.import_module(module)\n"
            "assert not MODELS._declared\n"
            "loaded = {e.name: e.description for e in MODELS}\n"
            "assert loaded == {n: d for n, (d, _) in declared.items()}, (loaded, declared)\n"
            "assert all(callable(e.factory) and e.factory.__module__ == declared[e.name][1]\n"
            "           for e in MODELS)\n"
            "print(sorted(loaded))")
    assert _python(code)[0] == str(["preactresnet18", "resnet18", "smallcnn",
                                    "smallcnn-smooth"])


def test_a_declared_model_is_built_through_its_declaration() -> None:
    from robustbench_graph.data import dataset_info
    from robustbench_graph.models import MODELS, create_model, model_options

    assert model_options("smallcnn") == ("width", "feature_dim")
    model = create_model("smallcnn", dataset_info("digits"), width=4, feature_dim=8)
    import torch

    assert type(model).__name__ == "SmallCNN"
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    assert MODELS.get("smallcnn").factory.__name__ == "smallcnn"


def test_a_loss_class_is_declared_without_torch_and_created_as_a_module() -> None:
    code = ("import sys\n"
            "from robustbench_graph.losses import LOSSES\n"
            "from robustbench_graph.report.methods import resolved_options\n"
            "assert all(not any(b.__module__.startswith('torch') for b in e.factory.__mro__)\n"
            "           for e in LOSSES)\n"
            "print(resolved_options('laplacian', {}, 'digits')['gamma'], "
            "'torch' in sys.modules)")
    assert _python(code)[0].split() == ["1.25", "False"]  # the grey preset, without torch


def test_a_stateful_loss_is_a_module_whose_buffers_save_and_load() -> None:
    import torch

    from robustbench_graph.losses import TrainingLoss, create_loss
    from robustbench_graph.losses.lmd import LargeMarginDiscriminative

    loss = create_loss("lmd", {}, 10)
    assert isinstance(loss, LargeMarginDiscriminative) and isinstance(loss, TrainingLoss)
    assert isinstance(loss, torch.nn.Module) and not issubclass(LargeMarginDiscriminative,
                                                                 torch.nn.Module)
    assert type(loss) is type(create_loss("lmd", {}, 10))  # one module class per loss
    loss.memory.update(torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2]))
    state = loss.state_dict()
    assert set(state) == {"memory.centres", "memory.initialised"}
    fresh = create_loss("lmd", {}, 10)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.memory.centres, loss.memory.centres)
    assert int(fresh.memory.initialised.sum()) == 3


def test_lazy_module_base_calls_forward_and_keeps_the_class_name() -> None:
    import torch

    class Doubler(LazyModuleBase):
        def __init__(self, k: int) -> None:
            super().__init__()
            self.register_buffer("k", torch.tensor(float(k)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.k

    d = Doubler(2)
    assert type(d).__name__ == "Doubler" and isinstance(d, Doubler)
    assert torch.equal(d(torch.ones(2)), torch.full((2,), 2.0))
    assert not issubclass(Doubler, torch.nn.Module)
