"""Issue 28: per-dataset-family presets for loss options (docs/losses.md#presets). A preset
fills the options not given, by the dataset's family; what is given explicitly wins; every
run records the preset it took; the report names methods against the preset, so a run at
the papers' values on a grey set says so."""

from __future__ import annotations

import dataclasses

import pytest

from robustbench_graph.config import TrainConfig
from robustbench_graph.data import FAMILIES, family_of
from robustbench_graph.errors import RbgError
from robustbench_graph.losses import (
    LOSSES,
    LossPreset,
    loss_preset,
    method_name,
    parse_loss_options,
    resolved_options,
)
from robustbench_graph.report.methods import method_config
from robustbench_graph.train import plan_runs


@pytest.mark.parametrize("entry", list(LOSSES), ids=lambda e: e.name)
def test_every_declared_preset_parses_and_names_its_source(entry) -> None:
    """Contract over the registry: each preset's family is a real one, its options are
    valid options of the loss, and it says where its values come from."""
    for family, preset in entry.factory.presets.items():
        assert family in FAMILIES
        assert preset.source.strip(), f"{entry.name} {family}: no source"
        options = dataclasses.asdict(parse_loss_options(entry.name, dict(preset.options)))
        for key, value in preset.options.items():
            assert options[key] == value


def test_family_of_registered_datasets() -> None:
    assert family_of("mnist5k") == family_of("fashion-mnist") == family_of("digits") == "grey"
    assert family_of("cifar10") == "colour"
    assert family_of("imagefolder") is None  # its shape is known only from its files
    assert family_of("no-such-set") is None


@pytest.fixture
def lmd_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    cls = LOSSES.get("lmd").factory
    monkeypatch.setattr(cls, "presets", {"grey": LossPreset({"lam": 0.25}, "test")})


def test_preset_fills_only_what_is_not_given(lmd_preset) -> None:
    assert resolved_options("lmd", {}, "mnist5k")["lam"] == 0.25
    assert resolved_options("lmd", {"lam": "0.5"}, "mnist5k")["lam"] == 0.5
    assert resolved_options("lmd", {}, "cifar10")["lam"] == 1.0  # no colour preset
    assert resolved_options("lmd", {})["lam"] == 1.0  # no dataset: the class defaults
    assert loss_preset("lmd", "cifar10") is None


def test_runs_record_their_preset_and_are_named_against_it(lmd_preset, tmp_path) -> None:
    (spec,) = plan_runs(TrainConfig(dataset="mnist5k", loss="lmd"), [0], tmp_path)
    assert spec.config.loss_options["lam"] == 0.25
    assert spec.name == "mnist5k-smallcnn-lmd-seed0"
    record = spec.config_record()
    assert record["loss_preset"] == {"family": "grey", "options": {"lam": 0.25},
                                     "source": "test"}
    assert record["method"] == "lmd"
    (papers,) = plan_runs(TrainConfig(dataset="mnist5k", loss="lmd",
                                      loss_options={"lam": "1"}), [0], tmp_path)
    assert papers.name == "mnist5k-smallcnn-lmd_lam1.0-seed0"
    (colour,) = plan_runs(TrainConfig(dataset="cifar10", loss="lmd"), [0], tmp_path)
    assert colour.config_record()["loss_preset"] is None
    assert colour.config.loss_options["lam"] == 1.0


def test_report_names_an_old_run_at_the_papers_values_apart(lmd_preset) -> None:
    """A run recorded before the preset (λ 1 on mnist5k) is not the preset's method."""
    old = TrainConfig(dataset="mnist5k", loss="lmd",
                      loss_options=resolved_options("lmd", {})).resolved().to_dict()
    new = TrainConfig(dataset="mnist5k", loss="lmd",
                      loss_options=resolved_options("lmd", {}, "mnist5k")).resolved().to_dict()
    old_cfg, new_cfg = method_config(old), method_config(new)
    assert old_cfg.key != new_cfg.key
    assert dict(new_cfg.loss_options) == dict(new_cfg.default_options)
    assert dict(old_cfg.loss_options)["lam"] != dict(old_cfg.default_options)["lam"]
    assert method_name("lmd", {"lam": "1"}, "mnist5k") == "lmd_lam1.0"


def test_an_invalid_explicit_option_is_still_one_line(lmd_preset) -> None:
    with pytest.raises(RbgError, match="lam"):
        resolved_options("lmd", {"lam": "many"}, "mnist5k")


def test_config_records_the_value_an_unset_option_takes_on_the_model(tmp_path) -> None:
    """Laplacian's ``gamma`` left unset resolves per model (1 on smallcnn, 10 on
    preactresnet18): config.json says which, so the report shows a value, not ``None``."""
    from robustbench_graph.data import dataset_info
    from robustbench_graph.models.base import create_model

    info = dataset_info("digits")
    (spec,) = plan_runs(TrainConfig(dataset="digits", loss="laplacian",
                                    loss_options={"gamma": "none"}), [0], tmp_path)
    assert spec.config.loss_options["gamma"] is None
    record = spec.config_record("cpu", info, model=create_model("smallcnn", info))
    assert record["resolved"] == {"gamma": 1.0}
    (ce,) = plan_runs(TrainConfig(dataset="digits"), [0], tmp_path)
    assert "resolved" not in ce.config_record("cpu", info, model=create_model("smallcnn", info))
