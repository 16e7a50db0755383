"""``rbg report --export robustbench``: one RobustBench-style ``model_info`` JSON per network
and threat model (docs/exporting.md).

RobustBench keeps one JSON per model under ``model_info/<dataset>/<threat_model>/<name>.json``
with fields such as ``clean_acc``, ``autoattack_acc``, ``corruptions_acc`` (percentages as
text, two decimals), ``eps`` and ``number_forward_passes`` (the ``ModelInfo`` dataclass of
``robustbench/utils.py``). rbg writes the same tree under ``<report>/robustbench/`` holding
only what it measured:

* ``clean_acc``: the network's ``clean`` accuracy;
* ``autoattack_acc``: AutoAttack's robust accuracy, only from the ``standard`` version at the
  leaderboard's ε for the threat model (:data:`LEADERBOARD_EPS`); a ``cheap`` run or another
  ε gives none;
* ``corruptions_acc``: the mean accuracy over the 15 CIFAR-10-C corruptions x severities 1-5
  of the ``corruptions`` family, only where all 75 cells were measured;
* ``eps``, ``threat_model``, ``dataset``, ``architecture``, ``name``, and
  ``number_forward_passes`` (1) for networks rbg trained (an imported network's forward is
  not known to be deterministic).

Beside them, ``rbg`` holds the exact fractions, each value's settings fingerprint and
settings, and the rbg version. A network with none of the threat models' measures but a
clean accuracy gets one file under ``<dataset>/clean/``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..perturbations.autoattack import DEFAULT_EPS, NORMS
from ..perturbations.corruptions.base import SEVERITIES
from ..perturbations.corruptions.library import CORRUPTIONS
from ..rundir.atomic import write_text_atomic
from ..rundir.imported_model import is_imported
from .model import Report

FOLDER = "robustbench"
# The ε of each leaderboard: RobustBench's CIFAR-10/100 budgets for colour images (L-inf
# 8/255, L2 0.5); for grey images (RobustBench has no MNIST leaderboard) the MNIST budgets
# rbg's AutoAttack uses by default (L-inf 0.3, L2 2.0).
LEADERBOARD_EPS: dict[str, dict[str, float]] = {
    family: {norm: eps[0] for norm, eps in budgets.items()}
    for family, budgets in DEFAULT_EPS.items()}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]")
EPS_TOLERANCE = 1e-6  # results.csv keeps ε to 10 significant digits


@dataclass
class ModelInfo:
    """One JSON to write: its path under the export folder, RobustBench's fields, rbg's."""

    path: Path
    fields: dict[str, Any]
    rbg: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {**self.fields, "rbg": self.rbg}


def percent(value: float) -> str:
    """A fraction as RobustBench writes it: percent, two decimals, as text (``"94.78"``)."""
    return str(round(float(value) * 100, 2))


def _fingerprints(results: pd.DataFrame) -> dict[tuple, str]:
    keys = ["run_path", "perturbation", "param", "param_value", "variant"]
    rows = results[[*keys, "settings"]].drop_duplicates()
    return {tuple(r[:-1]): str(r[-1]) for r in rows.itertuples(index=False)}


def _family(record: dict[str, Any] | None) -> str | None:
    """``grey`` or ``colour`` from the run's recorded dataset info, None when unrecorded."""
    try:
        return "grey" if int((record or {})["dataset_info"]["input_shape"][0]) == 1 else "colour"
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def _pick(candidates: list[tuple[float, str, dict[str, Any]]]
          ) -> tuple[float, str, dict[str, Any]] | None:
    """Of several fingerprints measuring one field: the one on every test image, else the
    first by fingerprint (the choice is recorded beside the value)."""
    if not candidates:
        return None
    whole = [c for c in candidates
             if (c[2].get("test_images") or {}).get("samples", 0) is None]
    return sorted(whole or candidates, key=lambda c: c[1])[0]


def _standard_autoattack(rows: pd.DataFrame, fps: dict[tuple, str], report: Report,
                         family: str | None) -> dict[str, tuple[float, str, dict[str, Any]]]:
    """Per threat model (``Linf``, ``L2``): the standard AutoAttack value at its ε."""
    found: dict[str, list[tuple[float, str, dict[str, Any]]]] = {}
    aa = rows[(rows["perturbation"] == "autoattack") & (rows["metric"] == "accuracy")]
    for r in aa.itertuples(index=False):
        fp = fps.get((r.run_path, r.perturbation, r.param, r.param_value, r.variant), "")
        settings = report.settings.get(fp)
        if not settings or settings.get("version") != "standard" or family is None:
            continue
        norm = str(settings.get("norm"))
        want = LEADERBOARD_EPS.get(family, {}).get(norm)
        if want is None or not math.isclose(float(r.param_value), want, rel_tol=0,
                                            abs_tol=EPS_TOLERANCE):
            continue
        found.setdefault(NORMS[norm], []).append((float(r.value), fp, settings))
    return {threat: picked for threat, c in found.items() if (picked := _pick(c)) is not None}


def _corruptions(rows: pd.DataFrame, fps: dict[tuple, str]
                 ) -> tuple[float, list[str]] | None:
    """The mean accuracy over every CIFAR-10-C corruption and severity 1-5 (one variant), or
    None where a cell is missing."""
    c = rows[(rows["perturbation"] == "corruptions") & (rows["metric"] == "accuracy")
             & rows["param"].isin(CORRUPTIONS) & rows["param_value"].isin(SEVERITIES)]
    need = len(CORRUPTIONS) * len(SEVERITIES)
    for _variant, group in c.groupby("variant", sort=True):
        cells = group.drop_duplicates(["param", "param_value"])
        if len(cells) == need and len(group) == need:
            prints = sorted({fps.get((r.run_path, r.perturbation, r.param, r.param_value,
                                      r.variant), "") for r in group.itertuples(index=False)})
            return float(group["value"].mean()), prints
    return None


def model_infos(report: Report) -> list[ModelInfo]:
    """The JSONs of every network of the report (in the order of its runs)."""
    nets = report.networks
    if nets is None or nets.empty:
        return []
    fps = _fingerprints(report.results)
    infos = {str(r.path): r for r in report.runs}
    out: list[ModelInfo] = []
    names: set[tuple[str, str]] = set()
    for run_path, rows in nets.groupby("run_path", sort=False):
        info = infos.get(str(run_path))
        record = info.record if info is not None else None
        dataset, model = str(rows["dataset"].iloc[0]), str(rows["model"].iloc[0])
        clean = rows[(rows["perturbation"] == "clean") & (rows["metric"] == "accuracy")]
        clean_pick = _pick([(float(r.value), fp, report.settings.get(fp, {}))
                            for r in clean.itertuples(index=False)
                            for fp in [fps.get((r.run_path, r.perturbation, r.param,
                                                r.param_value, r.variant), "")]])
        family = _family(record)
        threats: dict[str, dict[str, Any]] = {
            threat: {"eps": LEADERBOARD_EPS[str(family)][str(measured[2]["norm"])],
                     "autoattack_acc": measured}
            for threat, measured in _standard_autoattack(rows, fps, report, family).items()}
        corrupted = _corruptions(rows, fps)
        if corrupted is not None:
            threats["corruptions"] = {"eps": None, "corruptions_acc": corrupted}
        if not threats and clean_pick is None:
            continue
        imported = record is not None and is_imported(record)
        name = Path(str(run_path)).name
        for threat, measured in (threats or {"clean": {}}).items():
            stem = name
            while (threat, stem) in names:
                stem += "_"
            names.add((threat, stem))
            fields: dict[str, Any] = {"name": str(info.run if info else name)}
            if not imported and record is not None:
                fields["number_forward_passes"] = 1
            fields.update(dataset=dataset, architecture=model)
            rbg: dict[str, Any] = {
                "version": report.version, "run_path": str(run_path),
                "method": str(rows["method"].iloc[0]), "imported": imported,
                "seed": record.get("seed") if record else None, "values": {}, "settings": {}}
            if threat != "clean":
                fields["threat_model"] = threat
                fields["eps"] = measured["eps"]
            if clean_pick is not None:
                _put(fields, rbg, "clean_acc", clean_pick)
            if "autoattack_acc" in measured:
                _put(fields, rbg, "autoattack_acc", measured["autoattack_acc"])
            if "corruptions_acc" in measured:
                value, prints = measured["corruptions_acc"]
                fields["corruptions_acc"] = percent(value)
                rbg["values"]["corruptions_acc"] = value
                rbg["settings"]["corruptions_acc"] = {"fingerprints": prints}
            out.append(ModelInfo(Path(_safe(dataset)) / threat / f"{_safe(stem)}.json", fields,
                                 rbg))
    return out


def _safe(name: str) -> str:
    """A path part: characters other than letters, digits, ``._=+-`` become ``_``."""
    cleaned = _UNSAFE.sub("_", name)
    return cleaned if cleaned.strip(".") else "_"


def _put(fields: dict[str, Any], rbg: dict[str, Any], key: str,
         measured: tuple[float, str, dict[str, Any]]) -> None:
    value, fp, settings = measured
    fields[key] = percent(value)
    rbg["values"][key] = value
    rbg["settings"][key] = {"fingerprint": fp, "settings": settings}


def write_robustbench(report: Report, out_dir: Path) -> list[Path]:
    """Write :func:`model_infos` under ``out_dir``/robustbench (atomically) and remove the
    files an earlier export wrote there that this one does not; their paths."""
    folder = Path(out_dir) / FOLDER
    paths = []
    for info in model_infos(report):
        path = folder / info.path
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(info.as_json(), indent=2, default=str) + "\n")
        paths.append(path)
    for old in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
        if old not in paths and old.is_file() and _written_by_rbg(old):
            old.unlink()
    return paths


def _written_by_rbg(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("rbg"), dict)
