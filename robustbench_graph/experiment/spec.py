"""The experiment file (TOML, docs/experiments.md): grids of training configurations, the
attack suite, the report's options, the resources of a unit and declared claims, read with
:mod:`tomllib` into plain, validated data. Every value is typed by the configuration
dataclass field it fills (:mod:`.schema`); every configuration is checked when the file is
read, so that ``rbg run --dry-run`` and ``rbg run`` agree on what is valid. The shipped files
(``experiment/shipped/``) are commented examples of every table.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..claims import Claim, parse_claims
from ..config import AttackConfig, ImageSubset, ReportConfig, TrainConfig, parse_seeds
from ..errors import RbgError
from ..settings import default_of
from .loss_entries import TRAIN_FIELDS, losses_of
from .schema import check, read_table, schema_of

SHIPPED = "robustbench_graph.experiment.shipped"  # the package folder of the shipped files
MAX_FILE_BYTES = 4 * 2**20  # an experiment file beyond this is not one
MAX_UNITS = 100_000  # units of one grid (2 per run): beyond that it is a typo, not a sweep
GRID_KEYS = ("datasets", "models", "losses", "parseval", "seeds")
_TRAIN = schema_of(TrainConfig)
# The grid's keys: one value of the field or a list of them (losses: parsed by _losses).
GRID_SCHEMA = {key: _TRAIN[field] | tuple[_TRAIN[field], ...] for key, field in
               (("datasets", "dataset"), ("models", "model"), ("parseval", "parseval"))}
GRID_SCHEMA |= {"seeds": str | int, "losses": Any}
ATTACK_SCHEMA = {"suite": str | tuple[str, ...],
                 "samples": schema_of(ImageSubset)["samples"],
                 "batch_size": schema_of(AttackConfig)["batch_size"],
                 "settings": dict[str, Any]}
REPORT_SCHEMA = schema_of(ReportConfig, skip=("claims",))  # claims: the file's [[claims]]
TOP_SCHEMA = {"name": str, "description": str, "out": str, "train": dict[str, Any],
              "attack": dict[str, Any], "report": dict[str, Any],
              "resources": dict[str, Any], "claims": Any}
TOP_KEYS = tuple(TOP_SCHEMA)
MAX_RESOURCE = 1 << 20  # cpus, gpus, minutes: beyond any machine


@dataclass(frozen=True)
class Resources:
    """What one unit asks of a cluster (Slurm through submitit, Ray)."""

    cpus: int = 1
    gpus: int = 0
    mem_gb: float | None = None
    timeout_min: int = 60
    partition: str | None = None

    def validate(self, where: str) -> None:
        for name, low in (("cpus", 1), ("gpus", 0), ("timeout_min", 1)):
            value = getattr(self, name)
            if not low <= value <= MAX_RESOURCE:
                raise RbgError(f"{where}: resources.{name} must be in {low}..{MAX_RESOURCE}, "
                               f"got {value}")
        if self.mem_gb is not None and not 0 < self.mem_gb <= MAX_RESOURCE:
            raise RbgError(f"{where}: resources.mem_gb must be in (0, {MAX_RESOURCE}], got "
                           f"{self.mem_gb:g}")


@dataclass(frozen=True)
class Experiment:
    """A parsed experiment file."""

    name: str
    source: str  # the file it was read from
    out: Path
    configs: tuple[TrainConfig, ...]
    seeds: tuple[int, ...]
    suite: str = "default"
    attack: AttackConfig = AttackConfig()
    baseline: str = default_of(ReportConfig, "baseline")
    plots: bool = default_of(ReportConfig, "plots")
    resources: Resources = Resources()
    description: str = ""
    data_dir: Path | None = None
    claims: tuple[Claim, ...] = ()  # checked against the grid (experiment.claims_check)
    columns: tuple[str, ...] | None = default_of(ReportConfig, "columns")
    # Per configuration, what its run folders' names get appended: the settings its
    # train.losses entry overrides (``-lr0.1``), else "".
    suffixes: tuple[str, ...] = ()


def shipped_experiments() -> list[str]:
    """The names of the experiment files shipped with the package."""
    return sorted(p.name.removesuffix(".toml") for p in resources.files(SHIPPED).iterdir()
                  if p.name.endswith(".toml"))


def locate(name_or_path: str) -> tuple[str, str]:
    """``(text, where)`` of an experiment file given by path or by shipped name; a file
    that is not a regular file of at most :data:`MAX_FILE_BYTES` is refused unread."""
    from ..rundir.folder import read_run_bytes

    path = Path(name_or_path)
    if path.suffix == ".toml" or (path.exists() and not path.is_dir()):
        try:
            return read_run_bytes(path, MAX_FILE_BYTES).decode("utf-8"), str(path)
        except FileNotFoundError:
            raise RbgError(f"experiment file {path} does not exist") from None
        except RbgError as err:
            raise RbgError(f"experiment file {err}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise RbgError(f"experiment file {path} cannot be read ({err})") from None
    if name_or_path in shipped_experiments():
        file = resources.files(SHIPPED) / f"{name_or_path}.toml"
        return file.read_text(encoding="utf-8"), f"{name_or_path} (shipped)"
    raise RbgError(f"no experiment file {name_or_path!r}: give a path to a .toml file or a "
                   f"shipped name ({', '.join(shipped_experiments())})")


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, tuple | list) else [value]


def _grid(train: dict[str, Any], where: str) -> tuple[list[Any], ...]:
    """(datasets, models, losses, parsevals, seeds) of [train], each checked and non-empty."""
    extra = set(train) - set(GRID_KEYS) - set(TRAIN_FIELDS)
    if extra:
        raise RbgError(f"{where}: unknown train setting(s) {', '.join(sorted(extra))}")
    grid = {k: check(train[k], GRID_SCHEMA[k], f"{where}: train.{k}")
            for k in GRID_KEYS if k in train}
    datasets = _items(grid.get("datasets", default_of(TrainConfig, "dataset")))
    models = _items(grid.get("models", default_of(TrainConfig, "model")))
    parsevals = _items(grid.get("parseval", default_of(TrainConfig, "parseval")))
    for key, items in (("datasets", datasets), ("models", models), ("parseval", parsevals)):
        if not items:
            raise RbgError(f"{where}: train.{key} must be a non-empty list")
    losses = losses_of(train.get("losses", [default_of(TrainConfig, "loss")]), where)
    seeds = parse_seeds(str(grid.get("seeds", "0")))
    units = 2 * math.prod(map(len, (datasets, models, losses, parsevals, seeds)))
    if units > MAX_UNITS:
        raise RbgError(f"{where}: the grid has {units:,} units ({len(datasets)} dataset(s) x "
                       f"{len(models)} model(s) x {len(losses)} loss(es) x {len(parsevals)} "
                       f"parseval x {len(seeds)} seed(s), a train and an attack unit each); "
                       f"at most {MAX_UNITS:,}")
    return datasets, models, losses, parsevals, seeds


def _suffix(settings: dict[str, Any] | None) -> str:
    def show(v: Any) -> str:
        return f"{v:g}" if isinstance(v, float) else "_".join(map(str, v)) if isinstance(
            v, tuple | list) else str(v)
    return "".join(f"-{k}{show(v)}" for k, v in sorted((settings or {}).items()))


def _configs(train: dict[str, Any], where: str
             ) -> tuple[list[TrainConfig], tuple[int, ...], list[str]]:
    """Every configuration of the grid, validated and resolved, the seeds, and each
    configuration's run-name suffix (:func:`_suffix` of its entry's settings)."""
    from ..data.datasets import DATASETS
    from ..losses import parse_loss_options
    from ..models import MODELS
    from ..train import plan_runs

    datasets, models, losses, parsevals, seeds = _grid(train, where)
    scalars = {k: check(v, _TRAIN[k], f"{where}: train.{k}") for k, v in train.items()
               if k in TRAIN_FIELDS}
    configs: list[TrainConfig] = []
    suffixes: list[str] = []
    combos = [(dataset, model, entry, parseval)
              for dataset, model, entry in itertools.product(datasets, models, losses)
              for parseval in ((entry.parseval,) if entry.parseval is not None else parsevals)]
    for dataset, model, entry, parseval in combos:
        loss, options = entry.name, entry.options
        try:
            DATASETS.get(dataset)
            MODELS.get(model)
            parse_loss_options(loss, options)
        except RbgError as err:
            raise RbgError(f"{where}: {err}") from None
        try:
            cfg = TrainConfig(dataset=dataset, model=model, loss=loss, loss_options=options,
                              parseval=parseval, **{**scalars, **(entry.settings or {})})
        except (TypeError, ValueError) as err:
            raise RbgError(f"{where}: {err}") from None
        (spec,) = plan_runs(cfg, [0], Path("."))  # validates and resolves the options
        configs.append(spec.config)
        suffixes.append(_suffix(entry.settings))
    return configs, tuple(seeds), suffixes


def _attack(record: dict[str, Any], where: str) -> tuple[str, AttackConfig]:
    from ..perturbations import check_suite, suite_names

    attack = read_table(record.get("attack", {}), ATTACK_SCHEMA, "attack", where)
    suite = attack.get("suite", "default")
    suite = ",".join(suite) if isinstance(suite, tuple) else suite
    typed = {}
    for family, values in attack.get("settings", {}).items():
        if not isinstance(values, dict):
            raise RbgError(f"{where}: attack.settings.{family} must be a table")
        for key, v in values.items():
            check(v, str | int | float | bool | tuple[str | int | float | bool, ...],
                  f"{where}: attack.settings.{family}.{key}")
        typed[family] = {k: ",".join(map(str, v)) if isinstance(v, list) else str(v)
                         for k, v in values.items()}
    attack_cfg = AttackConfig(settings=typed, test_images=ImageSubset(attack.get("samples")),
                              batch_size=attack.get("batch_size"))
    attack_cfg.validate()
    check_suite(suite_names(suite), attack_cfg.settings)
    return suite, attack_cfg


def check_out(out: Path, where: str) -> None:
    """Refuse an ``out`` that is, or lies inside, a run folder (its grid would be trained
    nested in that run, and reports would show the enclosing run)."""
    from ..rundir.folder import STATUSES, read_config, read_status

    folder = Path(out).absolute()
    for parent in (folder, *folder.parents):
        if not parent.is_dir():
            continue
        is_run = read_status(parent)["status"] in STATUSES
        if not is_run and (parent / "config.json").is_file():
            try:
                read_config(parent)
                is_run = True
            except RbgError:
                pass
        if is_run:
            raise RbgError(f"{where}: out {out} is inside the run folder {parent}; give an "
                           "out folder outside any run folder")


def parse(text: str, where: str, *, out: Path | None = None,
          data_dir: Path | None = None) -> Experiment:
    """An :class:`Experiment` from the text of an experiment file, every value typed by its
    schema (:mod:`.schema`) and every configuration validated (unknown datasets, models,
    losses and options are errors here, before any work)."""
    from .claims_check import check_claims

    try:
        record = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise RbgError(f"{where} is not valid TOML ({err})") from None
    except RecursionError:
        raise RbgError(f"{where} is not valid TOML (nested too deep)") from None
    unknown = set(record) - set(TOP_KEYS)
    if unknown:
        raise RbgError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; valid: "
                       f"{', '.join(TOP_KEYS)}")
    record = {k: check(v, TOP_SCHEMA[k], f"{where}: {k}") for k, v in record.items()}
    configs, seeds, suffixes = _configs(record.get("train", {}), where)
    suite, attack_cfg = _attack(record, where)
    claims = parse_claims(record.get("claims"), where)
    check_claims(claims, configs, suite, attack_cfg, where, data_dir)
    report = read_table(record.get("report", {}), REPORT_SCHEMA, "report", where)
    try:
        ReportConfig(**report).validate()
    except RbgError as err:
        raise RbgError(f"{where}: report: {err}") from None
    resources_ = Resources(**read_table(record.get("resources", {}),
                                        schema_of(Resources), "resources", where))
    resources_.validate(where)
    name = record.get("name") or Path(where.split(" ")[0]).stem
    folder = Path(out) if out is not None else Path(record.get("out", f"runs/{name}"))
    check_out(folder, where)
    return Experiment(
        name=name, source=where, out=folder, configs=tuple(configs), seeds=seeds,
        suite=suite, attack=attack_cfg,
        baseline=report.get("baseline", Experiment.baseline),
        plots=report.get("plots", Experiment.plots), columns=report.get("columns"),
        resources=resources_, description=record.get("description", ""),
        data_dir=data_dir, claims=claims, suffixes=tuple(suffixes),
    )


def load(name_or_path: str, *, out: Path | None = None,
         data_dir: Path | None = None) -> Experiment:
    text, where = locate(name_or_path)
    return parse(text, where, out=out, data_dir=data_dir)


__all__ = ["Experiment", "Resources", "load", "parse", "shipped_experiments"]
