"""``rbg report --export mlflow``: each network's run as one MLflow run (docs/exporting.md).

Params: the run's recorded configuration (``train.*``, ``imported.*`` where imported, the
seed, the dataset and model) and the report's method name; metrics: every per-network value
of ``networks.csv`` (:func:`metric_key` names them); tags: the run folder and rbg's version.
The default tracking URI is a ``file:`` store under the report folder (offline, no
database); any URI MLflow takes works (``sqlite:///...`` needs ``sqlalchemy`` and
``alembic``, ``http(s)://`` a tracking server). Exporting again replaces a network's run of
the same experiment (the old one is marked deleted).

MLflow 3 refuses ``file:`` stores unless ``MLFLOW_ALLOW_FILE_STORE=true``; rbg sets it while
it exports to such a store, and readers of the store set it too.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RbgError
from ..rundir.attack_record import flatten_settings
from .model import Report

EXTRA_MESSAGE = ("the mlflow export needs the optional extra: pip install "
                 "'robustbench_graph[mlflow]'")
STORE = "mlruns"
RUN_PATH_TAG = "rbg.run_path"
MAX_PARAM = 500  # the shortest param value every MLflow version accepts
PROBE_TIMEOUT_S = "5"
_BAD = re.compile(r"[^A-Za-z0-9_\-. :/]")


@dataclass(frozen=True)
class MlflowExport:
    """Where the runs went: the tracking URI, the experiment and one run id per network."""

    uri: str
    experiment: str
    experiment_id: str
    run_ids: dict[str, str]  # run folder: MLflow run id


def default_uri(out_dir: Path) -> str:
    return (Path(out_dir).resolve() / STORE).as_uri()


def load_mlflow() -> Any:
    """The ``mlflow`` module. Raises RbgError (one line) when the extra is missing."""
    with _environment(""):  # MLflow starts its usage telemetry when imported
        try:
            import mlflow
        except ImportError:
            raise RbgError(EXTRA_MESSAGE) from None
    return mlflow


@contextlib.contextmanager
def _environment(uri: str) -> Iterator[None]:
    """``MLFLOW_ALLOW_FILE_STORE`` for a file store, one quick try per HTTP request, and no
    usage telemetry (MLflow 3 sends it by default) unless the user chose otherwise."""
    wanted = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
              "MLFLOW_HTTP_REQUEST_TIMEOUT": PROBE_TIMEOUT_S}
    if uri.startswith("file:"):
        wanted["MLFLOW_ALLOW_FILE_STORE"] = "true"
    if "MLFLOW_DISABLE_TELEMETRY" not in os.environ:  # offline unless the user says so
        wanted["MLFLOW_DISABLE_TELEMETRY"] = "true"
    old = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _client(uri: str) -> Any:
    load_mlflow()
    from mlflow.tracking import MlflowClient

    try:
        return MlflowClient(tracking_uri=uri)
    except ImportError as err:
        raise RbgError(f"the MLflow tracking URI {uri} needs {err.name or 'a module'} "
                       "(a sqlite store: pip install sqlalchemy alembic; or use a file: "
                       "URI)") from None
    except Exception as err:  # noqa: BLE001 - MLflow raises many kinds; one line each
        raise RbgError(f"the MLflow tracking URI {uri} cannot be used: "
                       f"{_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def check_mlflow(uri: str) -> None:
    """Check, before anything is written, that MLflow is installed and ``uri`` answers (a
    ``file:`` store is created on export and not probed).

    Raises:
        RbgError: the extra is missing, or the store cannot be reached (one line).
    """
    load_mlflow()
    if uri.startswith("file:"):
        path = Path(uri.removeprefix("file://").removeprefix("file:"))
        if path.exists() and not path.is_dir():
            raise RbgError(f"the MLflow tracking URI {uri} names a file, not a folder")
        return
    with _environment(uri):
        client = _client(uri)
        try:
            client.search_experiments(max_results=1)
        except Exception as err:  # noqa: BLE001
            raise RbgError(f"the MLflow tracking URI {uri} cannot be reached: "
                           f"{_first_line(err)}") from None


def metric_key(perturbation: str, param: str, param_value: float, metric: str,
               variant: str = "") -> str:
    """``pgd/eps/0.1/accuracy``, ``clean/accuracy``, ``pgd/eps/accuracy_auc``; a variant
    follows as a last part; characters MLflow refuses become ``_``."""
    parts = [perturbation]
    if param != "none":
        parts.append(param)
    if not math.isnan(float(param_value)) and param != "none":
        parts.append(f"{float(param_value):.10g}")  # as networks.csv writes it
    parts.append(metric)
    if variant:
        parts.append(variant)
    return _BAD.sub("_", "/".join(parts))


def run_params(record: dict[str, Any] | None, method: str) -> dict[str, str]:
    """A run's configuration as MLflow params (text, at most :data:`MAX_PARAM` characters)."""
    record = record or {}
    flat: dict[str, Any] = {"method": method, "seed": record.get("seed"),
                            "recorded_method": record.get("method")}
    for section in ("train", "imported"):
        if isinstance(record.get(section), dict):
            flat.update(flatten_settings(record[section], f"{section}."))
    return {_BAD.sub("_", k): str(v)[:MAX_PARAM] for k, v in flat.items() if v is not None}


def export_mlflow(report: Report, uri: str, experiment: str | None = None) -> MlflowExport:
    """Log every network of ``report`` to ``uri`` (experiment ``rbg <runs folder>``)."""
    from mlflow.entities import Metric, Param

    nets = report.networks
    name = experiment or f"rbg {Path(report.runs_root).resolve().name}"
    infos = {str(r.path): r for r in report.runs}
    with _environment(uri):
        client = _client(uri)
        try:
            found = client.get_experiment_by_name(name)
            exp_id = found.experiment_id if found else client.create_experiment(name)
            old = {}
            for run in client.search_runs([exp_id], max_results=50000):
                old.setdefault(run.data.tags.get(RUN_PATH_TAG), []).append(run.info.run_id)
            ids: dict[str, str] = {}
            now = int(time.time() * 1000)
            for run_path, rows in ([] if nets is None else nets.groupby("run_path", sort=False)):
                info = infos.get(str(run_path))
                folder = str(Path(str(run_path)).resolve())
                for stale in old.get(folder, []):
                    client.delete_run(stale)
                run = client.create_run(exp_id, run_name=info.run if info else None, tags={
                    RUN_PATH_TAG: folder, "rbg.version": report.version,
                    "rbg.report": str(Path(report.out_dir).resolve()),
                    "rbg.dataset": str(rows["dataset"].iloc[0]),
                    "rbg.model": str(rows["model"].iloc[0])})
                params = [Param(k, v) for k, v in run_params(
                    info.record if info else None, str(rows["method"].iloc[0])).items()]
                metrics = [Metric(metric_key(r.perturbation, r.param, r.param_value, r.metric,
                                             r.variant), float(r.value), now, 0)
                           for r in rows.itertuples(index=False)]
                for i in range(0, len(params), 100):  # MLflow's limits per batch
                    client.log_batch(run.info.run_id, params=params[i:i + 100])
                for i in range(0, len(metrics), 1000):
                    client.log_batch(run.info.run_id, metrics=metrics[i:i + 1000])
                client.set_terminated(run.info.run_id)
                ids[str(run_path)] = run.info.run_id
        except RbgError:
            raise
        except Exception as err:  # noqa: BLE001
            raise RbgError(f"MLflow export to {uri} failed: {_first_line(err)}") from None
    return MlflowExport(uri, name, str(exp_id), ids)
