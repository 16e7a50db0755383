"""One home of defaults (issue #26): every option of ``rbg train``, ``rbg attack`` and ``rbg
report`` that sets a configuration field states that field's default, and loss options and
perturbation settings share one parser."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
import typer

from robustbench_graph.claims import load_claims
from robustbench_graph.cli.app import app
from robustbench_graph.cli.options import (
    parse_int_list,
    parse_key_values,
    parse_perturbation_settings,
)
from robustbench_graph.config import AttackConfig, ImageSubset, ReportConfig, TrainConfig
from robustbench_graph.errors import RbgError
from robustbench_graph.settings import default_of, parse_settings


def _same(value: Any) -> Any:
    return value


def _columns(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(c.strip() for c in text.split(",") if c.strip())


# option -> (dataclass, field, the option's value as the command hands it to the field)
TRAIN = {name: (TrainConfig, name, _same) for name in (
    "dataset", "model", "loss", "epochs", "batch_size", "lr", "lr_factor", "momentum",
    "weight_decay", "augment", "grad_clip", "parseval", "parseval_beta", "amp",
    "channels_last", "width", "feature_dim", "split_seed", "val_fraction", "select")} | {
    "loss_option": (TrainConfig, "loss_options", lambda v: parse_key_values(v, "-o")),
    "lr_milestones": (TrainConfig, "lr_milestones",
                      lambda v: None if v is None else parse_int_list(v, "--lr-milestones")),
}
ATTACK = {
    "setting": (AttackConfig, "settings", parse_perturbation_settings),
    "batch_size": (AttackConfig, "batch_size", _same),
    "samples": (ImageSubset, "samples", _same),
    "subset": (ImageSubset, "rule", _same),
}
REPORT = {name: (ReportConfig, name, _same) for name in ("baseline", "plots")} | {
    "columns": (ReportConfig, "columns", _columns),
    "claims": (ReportConfig, "claims", lambda path: () if path is None else load_claims(path)),
}

# Options that set no configuration field, each with the reason.
CLI_ONLY = {
    "train": {
        "seeds": "a run is a configuration plus a seed; the seeds pick the runs",
        "device": "where it runs, not what is computed",
        "out": "where the run folders go",
        "data_dir": "where the datasets are read from",
        "download": "whether missing datasets are fetched",
        "overwrite": "what to do with complete runs",
    },
    "attack": {
        "run_dirs": "which runs are attacked",
        "runs": "which runs are attacked",
        "suite": "which perturbations run (the runs' results record them per cell)",
        "device": "where it runs, not what is computed",
        "data_dir": "where the datasets are read from",
        "corruptions_dir": "a shorthand for -p corruptions.dir=..., a perturbation setting",
        "overwrite": "what to do with cells already computed",
        "trust_code": "whether an imported run's code may run, not what is computed",
    },
    "report": {
        "runs": "which runs are reported",
        "out": "where the report goes",
        "export": "where the results also go (trackers, RobustBench JSON), not what is computed",
        "tracking_uri": "where the MLflow export goes",
    },
}
MAPPED = {"train": TRAIN, "attack": ATTACK, "report": REPORT}
# Fields without an option of their own, each with the reason.
NOT_OPTIONS = {(AttackConfig, "test_images"): "--samples and --subset set its two fields"}


def _params(command: str) -> dict[str, Any]:
    group = typer.main.get_command(app)
    return {p.name: p for p in group.commands[command].params}


@pytest.mark.parametrize("command", sorted(MAPPED))
def test_every_option_is_a_config_field_or_listed_as_cli_only(command):
    params = _params(command)
    unmapped = set(params) - set(MAPPED[command]) - set(CLI_ONLY[command])
    assert not unmapped, (f"rbg {command}: map {sorted(unmapped)} to a config field (default "
                          "from the dataclass) or list it in CLI_ONLY with a reason")
    stale = (set(MAPPED[command]) | set(CLI_ONLY[command])) - set(params)
    assert not stale, f"rbg {command} has no option {sorted(stale)}"
    assert not set(MAPPED[command]) & set(CLI_ONLY[command])
    assert all(CLI_ONLY[command].values())


@pytest.mark.parametrize(("command", "option"),
                         [(c, o) for c in sorted(MAPPED) for o in sorted(MAPPED[c])])
def test_option_default_is_the_config_default(command, option):
    cls, name, to_field = MAPPED[command][option]
    default = _params(command)[option].default
    assert to_field(default) == default_of(cls, name), (
        f"rbg {command} --{option.replace('_', '-')} defaults to {default!r}, "
        f"{cls.__name__}.{name} to {default_of(cls, name)!r}")


@pytest.mark.parametrize("cls", [TrainConfig, ImageSubset, AttackConfig, ReportConfig])
def test_every_config_field_has_an_option(cls):
    reached = {(c, f) for options in MAPPED.values() for c, f, _ in options.values()}
    missing = [f.name for f in dataclasses.fields(cls)
               if (cls, f.name) not in reached and (cls, f.name) not in NOT_OPTIONS]
    assert not missing, f"{cls.__name__} fields without an option: {missing}"


def test_experiment_report_defaults_are_the_report_config():
    from robustbench_graph.experiment.spec import Experiment, parse

    assert Experiment.baseline == ReportConfig().baseline == "ce"
    assert Experiment.plots is ReportConfig().plots is True
    text = 'name = "x"\n[train]\ndatasets = ["digits"]\n[attack]\nsuite = "clean"\n'
    exp = parse(text, "test.toml")
    assert (exp.baseline, exp.plots) == (ReportConfig().baseline, ReportConfig().plots)


def test_default_of_reads_defaults_and_factories():
    assert default_of(TrainConfig, "epochs") == TrainConfig().epochs
    assert default_of(TrainConfig, "loss_options") == {}
    assert default_of(AttackConfig, "test_images") == ImageSubset()
    with pytest.raises(KeyError, match="no field 'epoch'"):
        default_of(TrainConfig, "epoch")

    @dataclass
    class Required:
        x: int

    with pytest.raises(KeyError, match="no default"):
        default_of(Required, "x")


@dataclass(frozen=True)
class _Toy:
    rate: float = 0.5
    steps: tuple[int, ...] = (1,)

    def validate(self) -> None:
        if self.rate > 1:
            raise RbgError(f"rate must be <= 1, got {self.rate}")


@pytest.mark.parametrize(("raw", "message"), [
    ({"speed": "1"}, "unknown {noun} 'speed' for toy 'a'; valid: rate, steps"),
    ({"rate": "abc"}, "toy 'a' {noun} rate='abc' is not a valid float"),
    ({"rate": "inf"}, "toy 'a' {noun} rate must be a finite number, got 'inf'"),
    ({"steps": "1,x"}, "toy 'a' {noun} steps='x' is not a valid int"),
])
def test_one_parser_whose_messages_differ_only_in_the_noun(raw, message):
    for noun in ("option", "setting"):
        with pytest.raises(RbgError) as err:
            parse_settings(_Toy, raw, "toy 'a'", noun)
        assert str(err.value) == message.format(noun=noun)


def test_the_parser_types_text_and_json_values_alike():
    assert parse_settings(_Toy, {"rate": "0.25", "steps": "2,3"}, "toy") == _Toy(0.25, (2, 3))
    assert parse_settings(_Toy, {"rate": 0.25, "steps": [2, 3]}, "toy") == _Toy(0.25, (2, 3))
    assert parse_settings(_Toy, {}, "toy") == _Toy()
    with pytest.raises(RbgError, match="rate must be <= 1"):
        parse_settings(_Toy, {"rate": "2"}, "toy")


def test_loss_options_and_perturbation_settings_use_the_one_parser():
    from robustbench_graph.losses import method_name, parse_loss_options
    from robustbench_graph.perturbations import family_class

    with pytest.raises(RbgError) as loss:
        parse_loss_options("laplacian", {"gamma": "abc"})
    assert str(loss.value) == "loss 'laplacian' option gamma='abc' is not a valid float"
    with pytest.raises(RbgError) as perturbation:
        family_class("gaussian").resolve({"snr_db": "5,abc"}, "grey")
    assert str(perturbation.value) == ("perturbation gaussian setting snr_db='abc' is not a "
                                       "valid float")
    # a TOML/JSON number and the same number typed on the command line name the same method
    assert parse_loss_options("laplacian", {"gamma": 1}).gamma == 1.0
    assert method_name("laplacian", {"gamma": 1}) == method_name("laplacian", {"gamma": "1"})
