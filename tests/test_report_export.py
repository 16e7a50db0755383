"""``rbg report --export robustbench|mlflow|tensorboard``: each export read back with the
library it is for, values equal to the report's ``networks.csv``."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robustbench_graph.report.export_mlflow import metric_key
from robustbench_graph.report.export_robustbench import percent
from robustbench_graph.rundir.results import COLUMNS

from conftest import cli

EPS = 8 / 255  # RobustBench's CIFAR-10 L-inf budget
FP = {"clean": "c1ea00000001", "aa": "aa57a0000001", "cheap": "aac4ea000001",
      "pgd": "9d0000000001", "gauss": "9a0000000001", "corr": "c0220000000"}
SETTINGS = {
    FP["clean"]: ("clean", {"test_images": {"rule": "spaced", "samples": None}}),
    FP["aa"]: ("autoattack", {"norm": "linf", "seed": 0, "version": "standard",
                              "test_images": {"rule": "spaced", "samples": None}}),
    FP["cheap"]: ("autoattack", {"norm": "linf", "seed": 0, "version": "cheap",
                                 "test_images": {"rule": "spaced", "samples": None}}),
    FP["pgd"]: ("pgd", {"norm": "linf", "steps": 20}),
    FP["gauss"]: ("gaussian", {"draws": 2}),
}
CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
               "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
               "elastic_transform", "pixelate", "jpeg_compression")


def make_run(root: Path, method: str, seed: int, rows: list[tuple]) -> Path:
    """A colour (3x32x32) run folder: config.json, status.json, results.csv (rows:
    perturbation, param, param_value, repeat, metric, value, fingerprint) and attack.json."""
    name = f"cifar10-smallcnn-{method}-seed{seed}"
    run_dir = root / name
    run_dir.mkdir(parents=True)
    record = {"run": name, "seed": seed, "method": method,
              "train": {"dataset": "cifar10", "model": "smallcnn", "loss": method,
                        "loss_options": {}, "epochs": 5, "parseval": False},
              "dataset_info": {"name": "cifar10", "input_shape": [3, 32, 32],
                               "num_classes": 10},
              "versions": {"robustbench_graph": "0.1.0"}}
    (run_dir / "config.json").write_text(json.dumps(record))
    (run_dir / "status.json").write_text(json.dumps({"status": "complete"}))
    pd.DataFrame([{"run": name, "dataset": "cifar10", "model": "smallcnn", "loss": method,
                   "seed": seed, "perturbation": p, "param": q, "param_value": v,
                   "repeat": r, "metric": m, "value": x, "n": 100, "settings": fp}
                  for p, q, v, r, m, x, fp in rows], columns=list(COLUMNS)
                 ).to_csv(run_dir / "results.csv", index=False)
    used = {fp for *_, fp in rows}
    settings = {fp: {"perturbation": p, "version": 1, "settings": s}
                for fp, (p, s) in SETTINGS.items() if fp in used}
    settings.update({fp: {"perturbation": "corruptions", "version": 1,
                          "settings": {"draws": 1}} for fp in used if fp.startswith("c022")})
    (run_dir / "attack.json").write_text(json.dumps({"format": 1, "settings": settings,
                                                     "cells": {}}))
    return run_dir


def rows_for(clean: float, aa: float, pgd: tuple[float, float], gauss: tuple[float, float],
             standard: bool = True, corruptions: float | None = None) -> list[tuple]:
    rows = [("clean", "none", 0.0, 0, "accuracy", clean, FP["clean"]),
            ("autoattack", "eps", EPS, 0, "accuracy", aa, FP["aa" if standard else "cheap"]),
            ("autoattack", "eps", 4 / 255, 0, "accuracy", aa + 0.1, FP["aa"]),
            ("pgd", "eps", 0.01, 0, "accuracy", pgd[0], FP["pgd"]),
            ("pgd", "eps", 0.03, 0, "accuracy", pgd[1], FP["pgd"])]
    rows += [("gaussian", "snr_db", 10.0, r, "accuracy", x, FP["gauss"])
             for r, x in enumerate(gauss)]
    if corruptions is not None:
        rows += [("corruptions", c, float(s), 0, "accuracy", corruptions - 0.01 * s,
                  f"c022{i:08d}") for i, (c, s) in
                 enumerate((c, s) for c in CORRUPTIONS for s in range(1, 6))]
    return rows


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three networks (two with the standard AutoAttack at 8/255, one with the cheap version
    only; one with every CIFAR-10-C cell), reported with every export; the report folder."""
    pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    tmp = tmp_path_factory.mktemp("export")
    make_run(tmp / "runs", "ce", 0, rows_for(0.91, 0.12, (0.5, 0.2), (0.8, 0.6),
                                             corruptions=0.7))
    make_run(tmp / "runs", "ce", 1, rows_for(0.89, 0.10, (0.45, 0.15), (0.7, 0.7)))
    make_run(tmp / "runs", "laplacian", 0,
             rows_for(0.93, 0.3, (0.6, 0.4), (0.9, 0.8), standard=False))
    out = tmp / "report"
    result = cli("report", "--runs", tmp / "runs", "--out", out, "--no-plots", "--export",
                 "robustbench,mlflow", "--export", "tensorboard")
    assert result.exit_code == 0, result.output
    assert "exported mlflow: 3 run(s)" in result.output
    return out


def _networks(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "networks.csv", keep_default_na=False,
                       na_values={"param_value": [""], "value": [""]})


def test_robustbench_json_holds_exactly_the_measured_fields(exported: Path) -> None:
    nets = _networks(exported)
    files = sorted((exported / "robustbench").rglob("*.json"))
    assert [f.relative_to(exported / "robustbench").as_posix() for f in files] == [
        "cifar10/Linf/cifar10-smallcnn-ce-seed0.json",
        "cifar10/Linf/cifar10-smallcnn-ce-seed1.json",
        "cifar10/clean/cifar10-smallcnn-laplacian-seed0.json",
        "cifar10/corruptions/cifar10-smallcnn-ce-seed0.json"]
    for f in files:
        info = json.loads(f.read_text())
        mine = nets[nets["run_path"] == info["rbg"]["run_path"]]

        def value(perturbation: str, param_value: float, mine: pd.DataFrame = mine) -> float:
            row = mine[(mine["perturbation"] == perturbation) & (mine["metric"] == "accuracy")
                       & np.array([math.isclose(v, param_value) for v in mine["param_value"]])]
            assert len(row) == 1
            return float(row["value"].iloc[0])

        clean = value("clean", 0.0)
        assert info["clean_acc"] == percent(clean) and info["rbg"]["values"]["clean_acc"] == clean
        assert info["rbg"]["settings"]["clean_acc"]["fingerprint"] == FP["clean"]
        assert info["rbg"]["version"] and info["number_forward_passes"] == 1
        threat = f.parent.name
        expected = {"name", "number_forward_passes", "dataset", "architecture", "clean_acc",
                    "rbg"}
        if threat == "Linf":
            expected |= {"threat_model", "eps", "autoattack_acc"}
            aa = value("autoattack", EPS)
            assert info["autoattack_acc"] == percent(aa)
            assert info["rbg"]["values"]["autoattack_acc"] == aa
            assert info["rbg"]["settings"]["autoattack_acc"]["fingerprint"] == FP["aa"]
            assert info["eps"] == pytest.approx(EPS) and info["threat_model"] == "Linf"
        elif threat == "corruptions":
            expected |= {"threat_model", "eps", "corruptions_acc"}
            corr = mine[(mine["perturbation"] == "corruptions") & (mine["metric"] == "accuracy")]
            assert len(corr) == 75
            assert info["rbg"]["values"]["corruptions_acc"] == pytest.approx(corr["value"].mean())
            assert info["corruptions_acc"] == percent(corr["value"].mean())
            assert info["eps"] is None
        assert set(info) == expected, f


def test_autoattack_absent_for_cheap_version_or_other_eps(exported: Path) -> None:
    """The laplacian network ran the cheap version at 8/255 and the standard one at 4/255
    only: no autoattack_acc, no threat model."""
    info = json.loads((exported / "robustbench/cifar10/clean/"
                       "cifar10-smallcnn-laplacian-seed0.json").read_text())
    assert "autoattack_acc" not in info and "threat_model" not in info and "eps" not in info
    assert "autoattack_acc" not in info["rbg"]["values"]
    nets = _networks(exported)
    assert (nets["perturbation"] == "autoattack").sum() == 6  # measured, yet not exported


def test_mlflow_store_read_back_with_mlflow(exported: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri((exported / "mlruns").resolve().as_uri())
    runs = mlflow.search_runs(search_all_experiments=True)
    assert len(runs) == 3
    nets = _networks(exported)
    for run in runs.to_dict("records"):
        mine = nets[[str(Path(p).resolve()) == run["tags.rbg.run_path"]
                     for p in nets["run_path"]]]
        assert len(mine) > 5
        for r in mine.itertuples(index=False):
            key = metric_key(r.perturbation, r.param, r.param_value, r.metric, r.variant)
            assert run[f"metrics.{key}"] == pytest.approx(r.value, rel=1e-12), key
        assert run["params.train.dataset"] == "cifar10"
        assert run["params.seed"] in ("0", "1")
        assert run["params.method"] == mine["method"].iloc[0]
    # exporting again replaces the runs instead of adding more
    result = cli("report", "--runs", exported.parent / "runs", "--out", exported, "--no-plots",
                 "--export", "mlflow")
    assert result.exit_code == 0, result.output
    assert len(mlflow.search_runs(search_all_experiments=True)) == 3


def test_tensorboard_events_read_back(exported: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    nets = _networks(exported)
    run_dir = exported / "tensorboard/runs/cifar10-smallcnn-ce-seed1"
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    mine = nets[nets["run_path"].str.endswith("cifar10-smallcnn-ce-seed1")]
    pgd = mine[(mine["perturbation"] == "pgd") & (mine["metric"] == "accuracy")
               ].sort_values("param_value")
    got = acc.Scalars("pgd/eps/accuracy")
    assert [e.step for e in got] == [0, 1]
    assert [e.value for e in got] == pytest.approx(list(pgd["value"]), abs=1e-7)
    assert [e.value for e in acc.Scalars("pgd/eps/strength")] == pytest.approx([0.01, 0.03])
    gauss = mine[(mine["perturbation"] == "gaussian")]["value"].iloc[0]
    assert acc.Scalars("gaussian/snr_db/accuracy")[0].value == pytest.approx(gauss, abs=1e-7)
    assert gauss == pytest.approx(0.7)  # the mean of the two draws
    clean = mine[mine["perturbation"] == "clean"]["value"].iloc[0]
    assert acc.Scalars("clean/accuracy")[0].value == pytest.approx(clean, abs=1e-7)
    area = mine[mine["metric"] == "accuracy_auc"]
    assert len(area) and acc.Scalars("pgd/eps/accuracy_auc")[0].value == pytest.approx(
        area[area["perturbation"] == "pgd"]["value"].iloc[0], abs=1e-7)
    assert not (exported / "tensorboard/figures").exists()  # --no-plots: no figures


def test_tensorboard_images_are_the_report_figures(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    make_run(tmp_path / "runs", "ce", 0, rows_for(0.9, 0.1, (0.5, 0.2), (0.8, 0.6)))
    out = tmp_path / "out"
    result = cli("report", "--runs", tmp_path / "runs", "--out", out, "--export",
                 "tensorboard")
    assert result.exit_code == 0, result.output
    figures = EventAccumulator(str(out / "tensorboard/figures"), size_guidance={"images": 0})
    figures.Reload()
    tags = figures.Tags()["images"]
    pngs = {p.read_bytes() for p in (out / "plots").glob("*.png")}
    assert len(tags) == len(pngs) > 0
    for tag in tags:
        (image,) = figures.Images(tag)
        assert image.encoded_image_string in pngs and image.width > 0 and image.height > 0
        assert tag.startswith("cifar10/smallcnn/")


@pytest.mark.parametrize("module, export", [("mlflow", "mlflow"),
                                            ("tensorboard", "tensorboard")])
def test_missing_extra_is_one_line_and_nothing_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, export: str) -> None:
    make_run(tmp_path / "runs", "ce", 0, rows_for(0.9, 0.1, (0.5, 0.2), (0.8, 0.6)))
    for name in [m for m in sys.modules if m == module or m.startswith(f"{module}.")]:
        monkeypatch.setitem(sys.modules, name, None)  # as if never installed
    monkeypatch.setitem(sys.modules, module, None)
    result = cli("report", "--runs", tmp_path / "runs", "--out", tmp_path / "out", "--export",
                 f"robustbench,{export}")
    assert result.exit_code == 1
    assert f"pip install 'robustbench_graph[{export}]'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_bad_export_name_and_unreachable_uri(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    make_run(tmp_path / "runs", "ce", 0, rows_for(0.9, 0.1, (0.5, 0.2), (0.8, 0.6)))
    out = tmp_path / "out"
    result = cli("report", "--runs", tmp_path / "runs", "--out", out, "--export", "wandb")
    assert result.exit_code == 1 and "unknown export 'wandb'" in result.output
    result = cli("report", "--runs", tmp_path / "runs", "--out", out, "--export", "mlflow",
                 "--tracking-uri", "http://127.0.0.1:9")
    assert result.exit_code == 1, result.output
    assert "cannot be reached" in result.output and "Traceback" not in result.output, result.output
    assert not out.exists()


def test_imported_network_has_no_forward_passes_and_stale_files_go(tmp_path: Path) -> None:
    """An imported network's forward is not rbg's: no number_forward_passes. A file an
    earlier export wrote and this one does not is removed; a file of the user's is kept."""
    from robustbench_graph.config import ReportConfig
    from robustbench_graph.report import build_report
    from robustbench_graph.report.export_robustbench import write_robustbench

    run = make_run(tmp_path / "runs", "ce", 0, rows_for(0.9, 0.1, (0.5, 0.2), (0.8, 0.6)))
    record = json.loads((run / "config.json").read_text())
    record["imported"] = {"source": {"kind": "factory"}, "input": "pixels"}
    (run / "config.json").write_text(json.dumps(record))
    out = tmp_path / "out"
    stale = out / "robustbench/cifar10/L2/old.json"
    mine = out / "robustbench/cifar10/L2/mine.json"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"clean_acc": "1.0", "rbg": {}}))
    mine.write_text(json.dumps({"clean_acc": "1.0"}))
    report = build_report(tmp_path / "runs", out, ReportConfig(plots=False))
    (path,) = write_robustbench(report, out)
    info = json.loads(path.read_text())
    assert info["rbg"]["imported"] is True and "number_forward_passes" not in info
    assert info["autoattack_acc"] == percent(0.1)
    assert not stale.exists() and mine.exists()


def test_real_run_exports_clean_and_standard_autoattack(tmp_path: Path, digits_run: Path
                                                        ) -> None:
    """A trained digits network attacked by rbg (clean, PGD, AutoAttack standard at 0.3, 30
    images): the JSON's clean_acc and autoattack_acc are the report's, from the
    standard version's fingerprint; MLflow and TensorBoard hold the same numbers."""
    pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    import shutil

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = tmp_path / "runs"
    shutil.copytree(digits_run, runs / digits_run.name)
    result = cli("attack", "--runs", runs, "--suite", "clean,pgd,autoattack", "--samples",
                 "30", "-p", "pgd.eps=0.1,0.3", "--device", "cpu")
    assert result.exit_code == 0, result.output
    out = tmp_path / "report"
    result = cli("report", "--runs", runs, "--out", out, "--no-plots", "--export",
                 "robustbench,mlflow,tensorboard")
    assert result.exit_code == 0, result.output
    nets = _networks(out)
    (path,) = (out / "robustbench/digits/Linf").glob("*.json")
    info = json.loads(path.read_text())
    clean = nets[nets["perturbation"] == "clean"]["value"].item()
    assert info["clean_acc"] == percent(clean) and 0.5 < clean <= 1
    aa = nets[(nets["perturbation"] == "autoattack") & (nets["metric"] == "accuracy")]
    assert len(aa) == 1
    fp = info["rbg"]["settings"]["autoattack_acc"]["fingerprint"]
    assert info["rbg"]["settings"]["autoattack_acc"]["settings"]["version"] == "standard"
    results = pd.read_csv(runs / digits_run.name / "results.csv")
    standard = results[(results["perturbation"] == "autoattack") & (results["settings"] == fp)]
    assert info["rbg"]["values"]["autoattack_acc"] == pytest.approx(standard["value"].item())
    assert info["eps"] == pytest.approx(0.3)
    acc = EventAccumulator(str(out / "tensorboard/runs" / digits_run.name))
    acc.Reload()
    assert acc.Scalars("clean/accuracy")[0].value == pytest.approx(clean, abs=1e-7)
    import mlflow

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri((out / "mlruns").resolve().as_uri())
    (run,) = mlflow.search_runs(search_all_experiments=True).to_dict("records")
    assert run["metrics.clean/accuracy"] == pytest.approx(clean)
