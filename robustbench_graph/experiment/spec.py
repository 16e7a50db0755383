"""The experiment file (TOML, docs/experiments.md): grids of training configurations and
the attack suite, read with :mod:`tomllib` into plain, validated data.

::

    name = "demo"
    out = "runs/demo"                 # relative to the current folder; --out overrides

    [train]
    datasets = ["mnist5k"]
    models = ["smallcnn"]
    seeds = "0-1"
    parseval = [false]                # [false, true]: both
    epochs = 5                        # any other rbg train setting: batch_size, lr, ...

    [[train.losses]]
    name = "ce"

    [[train.losses]]
    name = "laplacian"
    options = { gamma = 1.0 }

    [attack]
    suite = "all"
    settings = { gaussian = { draws = 5 }, deepfool = { samples = 200 } }

    [report]
    baseline = "ce"

    [resources]                       # per unit, for --executor slurm / ray
    cpus = 2
    gpus = 0
    timeout_min = 120

    [[claims]]                        # declared hypotheses (robustbench_graph.claims)
    id = "laplacian-gaussian"
    text = "The Laplacian regulariser makes networks more robust to Gaussian noise than CE"
    method = "laplacian"
    baseline = "ce"
    measure = "gaussian@-5"
    direction = "higher"
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..claims import Claim, parse_claims
from ..config import AttackConfig, ImageSubset, ReportConfig, TrainConfig, parse_seeds
from ..errors import RbgError
from ..settings import default_of

SHIPPED = "robustbench_graph.experiment.shipped"  # the package folder of the shipped files
GRID_KEYS = ("datasets", "models", "losses", "parseval", "seeds")
# TrainConfig fields an experiment may set for every configuration ([train] scalars).
TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                     if f.name not in ("dataset", "model", "loss", "loss_options", "parseval"))
TOP_KEYS = ("name", "description", "out", "train", "attack", "report", "resources", "claims")


@dataclass(frozen=True)
class Resources:
    """What one unit asks of a cluster (Slurm through submitit, Ray)."""

    cpus: int = 1
    gpus: int = 0
    mem_gb: float | None = None
    timeout_min: int = 60
    partition: str | None = None


@dataclass(frozen=True)
class Experiment:
    """A parsed experiment file."""

    name: str
    source: str  # the file it was read from
    out: Path
    configs: tuple[TrainConfig, ...]
    seeds: tuple[int, ...]
    suite: str = "all"
    attack: AttackConfig = AttackConfig()
    baseline: str = default_of(ReportConfig, "baseline")
    plots: bool = default_of(ReportConfig, "plots")
    resources: Resources = Resources()
    description: str = ""
    data_dir: Path | None = None
    claims: tuple[Claim, ...] = ()  # checked against the grid (experiment.claims_check)


def shipped_experiments() -> list[str]:
    """The names of the experiment files shipped with the package."""
    return sorted(p.name.removesuffix(".toml") for p in resources.files(SHIPPED).iterdir()
                  if p.name.endswith(".toml"))


def locate(name_or_path: str) -> tuple[str, str]:
    """``(text, where)`` of an experiment file given by path or by shipped name."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or (path.exists() and not path.is_dir()):
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except FileNotFoundError:
            raise RbgError(f"experiment file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as err:
            raise RbgError(f"experiment file {path} cannot be read ({err})") from None
    if name_or_path in shipped_experiments():
        file = resources.files(SHIPPED) / f"{name_or_path}.toml"
        return file.read_text(encoding="utf-8"), f"{name_or_path} (shipped)"
    raise RbgError(f"no experiment file {name_or_path!r}: give a path to a .toml file or a "
                   f"shipped name ({', '.join(shipped_experiments())})")


def _table(record: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = record.get(key, {})
    if not isinstance(value, dict):
        raise RbgError(f"{where}: [{key}] must be a table")
    return value


def _list(value: Any, key: str, where: str, kind: type | tuple[type, ...]) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, kind) and not (kind is int and isinstance(v, bool))
                            for v in items):
        raise RbgError(f"{where}: train.{key} must be a non-empty list")
    return items


def _losses(value: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, str):
            out.append((item, {}))
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            unknown = set(item) - {"name", "options"}
            if unknown:
                raise RbgError(f"{where}: unknown key(s) in a train.losses entry: "
                               f"{', '.join(sorted(unknown))}")
            options = item.get("options", {})
            if not isinstance(options, dict):
                raise RbgError(f"{where}: the options of loss {item['name']!r} must be a table")
            out.append((item["name"], {k: str(v) if not isinstance(v, str) else v
                                       for k, v in options.items()}))
        else:
            raise RbgError(f"{where}: each train.losses entry is a name or a table with "
                           "'name' (and 'options')")
    if not out:
        raise RbgError(f"{where}: train.losses is empty")
    return out


def parse(text: str, where: str, *, out: Path | None = None,
          data_dir: Path | None = None) -> Experiment:
    """An :class:`Experiment` from the text of an experiment file, every configuration
    validated (unknown losses, models and options are errors here, before any work)."""
    from ..losses import parse_loss_options
    from ..models import MODELS
    from ..perturbations import check_suite, suite_names
    from ..train import plan_runs
    from .claims_check import check_claims

    try:
        record = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise RbgError(f"{where} is not valid TOML ({err})") from None
    unknown = set(record) - set(TOP_KEYS)
    if unknown:
        raise RbgError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; valid: "
                       f"{', '.join(TOP_KEYS)}")
    train = _table(record, "train", where)
    extra = set(train) - set(GRID_KEYS) - set(TRAIN_FIELDS)
    if extra:
        raise RbgError(f"{where}: unknown train setting(s) {', '.join(sorted(extra))}")
    datasets = _list(train.get("datasets", ["mnist5k"]), "datasets", where, str)
    models = _list(train.get("models", ["smallcnn"]), "models", where, str)
    parsevals = _list(train.get("parseval", [False]), "parseval", where, bool)
    losses = _losses(train.get("losses", ["ce"]), where)
    seeds = tuple(parse_seeds(str(train.get("seeds", "0"))))
    scalars = {k: v for k, v in train.items() if k in TRAIN_FIELDS}
    if "lr_milestones" in scalars:
        scalars["lr_milestones"] = tuple(_list(scalars["lr_milestones"], "lr_milestones",
                                               where, int))
    configs = []
    for dataset, model, (loss, options), parseval in itertools.product(
            datasets, models, losses, parsevals):
        MODELS.get(model)
        parse_loss_options(loss, options)
        try:
            cfg = TrainConfig(dataset=dataset, model=model, loss=loss, loss_options=options,
                              parseval=parseval, **scalars)
        except TypeError as err:
            raise RbgError(f"{where}: {err}") from None
        (spec,) = plan_runs(cfg, [0], Path("."))  # validates and resolves the options
        configs.append(spec.config)
    attack = _table(record, "attack", where)
    suite = attack.get("suite", "all")
    suite = ",".join(suite) if isinstance(suite, list) else str(suite)
    settings = _table(attack, "settings", where)
    typed = {}
    for family, values in settings.items():
        if not isinstance(values, dict):
            raise RbgError(f"{where}: attack.settings.{family} must be a table")
        typed[family] = {k: ",".join(map(str, v)) if isinstance(v, list) else str(v)
                         for k, v in values.items()}
    attack_cfg = AttackConfig(settings=typed, test_images=ImageSubset(attack.get("samples")),
                              batch_size=attack.get("batch_size"))
    attack_cfg.validate()
    check_suite(suite_names(suite), attack_cfg.settings)
    claims = parse_claims(record.get("claims"), where)
    check_claims(claims, configs, suite, attack_cfg, where, data_dir)
    report = _table(record, "report", where)
    res = _table(record, "resources", where)
    try:
        resources_ = Resources(**res)
    except TypeError:
        raise RbgError(f"{where}: [resources] takes "
                       f"{', '.join(f.name for f in dataclasses.fields(Resources))}") from None
    name = str(record.get("name") or Path(where.split(" ")[0]).stem)
    return Experiment(
        name=name, source=where,
        out=Path(out) if out is not None else Path(str(record.get("out", f"runs/{name}"))),
        configs=tuple(configs), seeds=seeds, suite=suite, attack=attack_cfg,
        baseline=str(report.get("baseline", Experiment.baseline)),
        plots=bool(report.get("plots", Experiment.plots)),
        resources=resources_, description=str(record.get("description", "")),
        data_dir=data_dir, claims=claims,
    )


def load(name_or_path: str, *, out: Path | None = None,
         data_dir: Path | None = None) -> Experiment:
    text, where = locate(name_or_path)
    return parse(text, where, out=out, data_dir=data_dir)


__all__ = ["Experiment", "Resources", "load", "parse", "shipped_experiments"]
