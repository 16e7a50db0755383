"""Every model trains and is attacked in every memory layout the tool can select, on this CPU
and on an AVX2-only one, each in a subprocess so that a crash fails one test, not the suite.

torch 2.14.1's oneDNN channels-last Conv2d backward corrupts the heap on AVX2 CPUs for small
channel counts (``scripts/onednn-channels-last-repro.py``). ``ONEDNN_MAX_CPU_ISA=AVX2`` and
``ATEN_CPU_CAPABILITY=avx2`` make an AVX-512 machine take the AVX2 kernels, so the crash is
tested for wherever the suite runs. rbg runs contiguous (NCHW) by default and refuses
``--channels-last`` on a CPU where a convolution has fewer than 8 channels.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from robustbench_graph.data import dataset_info
from robustbench_graph.errors import RbgError
from robustbench_graph.models import (
    MIN_CHANNELS_LAST_CHANNELS,
    MODELS,
    create_model,
    is_channels_last_model,
    set_memory_format,
)

# One training step (laplacian loss, the tool's heaviest backward) and two DeepFool steps,
# through the same calls as `rbg train` / `rbg attack`, for each width given.
_STEP = """
import sys, torch
from robustbench_graph.data.datasets import dataset_info
from robustbench_graph.perturbations.deepfool.native import deepfool
from robustbench_graph.losses import create_loss
from robustbench_graph.models import create_model, set_memory_format
torch.set_num_threads(1)
name, channels_last = sys.argv[1], sys.argv[2] == "1"
info = dataset_info("cifar10")
for width in map(int, sys.argv[3].split(",")):
    torch.manual_seed(0)
    model = set_memory_format(create_model(name, info, width=width), channels_last, "cpu")
    x, y = torch.rand(8, 3, 32, 32), torch.arange(8) % 10
    for _ in range(3):
        create_loss("laplacian", {}, 10)(model, x, y).loss.backward()
    deepfool(model.eval(), x, y, steps=2, input_layer=model.input_layer)
print("ok")
"""

ISAS = {"native": {}, "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}


def _widths(name: str, channels_last: bool) -> str:
    """The model's default width, and the smallest that the layout accepts on a CPU."""
    default = "32" if name == "smallcnn" else "64"
    return f"{default},{MIN_CHANNELS_LAST_CHANNELS if channels_last else 4}"


@pytest.mark.parametrize("isa", sorted(ISAS))
@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("name", MODELS.names())
def test_train_and_attack_steps_run_in_every_selectable_layout(name: str, channels_last: bool,
                                                               isa: str) -> None:
    env = {**os.environ, **ISAS[isa]}
    proc = subprocess.run(
        [sys.executable, "-c", _STEP, name, "1" if channels_last else "0",
         _widths(name, channels_last)],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (
        f"exit {proc.returncode}: {proc.stderr[-2000:]}")


@pytest.mark.parametrize("dataset", ["cifar10", "mnist5k"])  # 3- and 1-channel first layers
@pytest.mark.parametrize("name", MODELS.names())
def test_models_are_contiguous_unless_asked(name: str, dataset: str) -> None:
    model = create_model(name, dataset_info(dataset), width=8)
    assert not is_channels_last_model(set_memory_format(model, False, "cpu"))
    assert is_channels_last_model(set_memory_format(model, True, "cpu"))


@pytest.mark.parametrize("name", ["preactresnet18", "resnet18", "smallcnn"])
def test_channels_last_with_few_channels_is_refused_on_cpu(name: str) -> None:
    model = create_model(name, dataset_info("cifar10"), width=4)
    with pytest.raises(RbgError, match="at least 8 channels"):
        set_memory_format(model, True, "cpu")
    assert not is_channels_last_model(model)


def test_the_run_records_its_layout_and_numerics(tmp_path) -> None:  # noqa: ANN001
    from robustbench_graph.config import TrainConfig
    from robustbench_graph.train import plan_runs

    for channels_last in (False, True):
        cfg = TrainConfig(dataset="digits", channels_last=channels_last, loss="laplacian")
        (spec,) = plan_runs(cfg, [0], tmp_path)
        record = spec.config_record(torch.device("cpu"))
        assert record["train"]["channels_last"] is channels_last
        numerics = record["numerics"]
        assert numerics["layout"] == ("channels_last" if channels_last else "contiguous")
        assert numerics["loss"] == {"form": "gram", "gram_dtype": "float32",
                                    "grad_dtype": "float32"}
