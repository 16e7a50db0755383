"""The report page at many runs: the answer first, runs and configurations collapsed and
naturally sorted, one unit per quantity, curves that stay readable, bounded growth."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection

from robustbench_graph.config import ReportConfig
from robustbench_graph.report import build_report
from robustbench_graph.report.formatting import format_diff, natural_key
from robustbench_graph.report.plots import DOTS_MAX, curve_figure, method_colors, panel_grid
from robustbench_graph.rundir.results import COLUMNS


def make_run(root: Path, loss: str, seed: int, shift: float) -> Path:
    """A complete digits run: clean and Gaussian noise at three strengths (a curve)."""
    name = f"digits-smallcnn-{loss}-seed{seed}"
    run_dir = root / name
    run_dir.mkdir(parents=True)
    record = {"run": name, "seed": seed, "method": loss,
              "train": {"dataset": "digits", "model": "smallcnn", "loss": loss,
                        "loss_options": {}, "epochs": 1},
              "numerics": {"loss": {}}, "versions": {"robustbench_graph": "0.1.0"},
              "git_commit": "abc123"}
    (run_dir / "config.json").write_text(json.dumps(record))
    (run_dir / "status.json").write_text(json.dumps({"status": "complete"}))
    rng = np.random.default_rng(seed)
    rows = [("clean", "none", 0.0, "accuracy", 0.9 + shift)]
    rows += [("gaussian", "snr_db", snr, "accuracy", 0.5 + snr / 50 + shift + rng.normal(0, .01))
             for snr in (0.0, 10.0, 20.0)]
    df = pd.DataFrame([{"run": name, "dataset": "digits", "model": "smallcnn", "loss": loss,
                        "seed": seed, "perturbation": p, "param": q, "param_value": v,
                        "repeat": 0, "metric": m, "value": x, "n": 100,
                        "settings": "0123456789ab"} for p, q, v, m, x in rows],
                      columns=list(COLUMNS))
    df.to_csv(run_dir / "results.csv", index=False)
    return run_dir


def study(root: Path, seeds: int) -> Path:
    for seed in range(seeds):
        make_run(root, "ce", seed, 0.0)
        make_run(root, "laplacian", seed, 0.02)
    return root


def page_of(root: Path, out: Path) -> str:
    build_report(root, out, ReportConfig(baseline="ce", plots=False))
    return (out / "index.html").read_text()


def outside_details(page: str) -> str:
    """The page with every (collapsed) <details> element taken out."""
    while "<details>" in page:
        start = page.index("<details>")
        depth, i = 0, start
        while True:
            nxt = re.compile(r"<details>|</details>").search(page, i)
            assert nxt is not None
            depth += 1 if nxt.group() == "<details>" else -1
            i = nxt.end()
            if depth == 0:
                break
        page = page[:start] + page[i:]
    return page


def test_natural_sort_key() -> None:
    names = ["run-seed10", "run-seed2", "run-seed1", "run-seed100", "Run-seed3"]
    assert sorted(names, key=natural_key) == ["run-seed1", "run-seed2", "Run-seed3",
                                              "run-seed10", "run-seed100"]


def test_runs_collapsed_sorted_one_line_each(tmp_path: Path) -> None:
    page = page_of(study(tmp_path / "runs", 12), tmp_path / "out")
    provenance = page[page.index('id="provenance"'):]
    runs = re.findall(r'<tr title="[^"]*"><td class="name">([^<]+)</td>', provenance)
    assert len(runs) == 24
    ce = [r for r in runs if "-ce-" in r]
    assert ce[:3] == ["digits-smallcnn-ce-seed0", "digits-smallcnn-ce-seed1",
                      "digits-smallcnn-ce-seed2"]  # seed2 before seed10
    assert ce.index("digits-smallcnn-ce-seed2") < ce.index("digits-smallcnn-ce-seed10")
    # the runs table and the configurations are collapsed (no open attribute)
    assert "<details open" not in page
    rest = outside_details(provenance)
    assert "digits-smallcnn-ce-seed10" not in rest and "<pre>" not in rest
    # one configuration per method, naming what varies among its runs
    assert provenance.count("<pre>") == 2
    assert "ce: 12 runs; differ in run, seed</summary>" in provenance
    # one line per run: the long parts are in the tooltip, cells do not wrap
    assert 'table class="oneline"' in provenance and "white-space: nowrap" in page
    assert "abc123" in provenance


def test_answer_before_details(tmp_path: Path) -> None:
    page = page_of(study(tmp_path / "runs", 3), tmp_path / "out")
    order = [page.index(f'id="{s}"') for s in ("headline", "tables", "comparisons",
                                                "methods", "provenance")]
    assert order == sorted(order)


def test_comparisons_in_percent_with_units(tmp_path: Path) -> None:
    page = page_of(study(tmp_path / "runs", 3), tmp_path / "out")
    section = page[page.index('id="comparisons"'):page.index('id="methods"')]
    assert re.search(r"<th[^>]*>unit</th>", section) and "% (Δ in pp)" in section
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", section)
    # no fraction with six digits (0.912345) anywhere; percents with one decimal
    assert not [c for c in cells if re.fullmatch(r"-?0\.\d{4,}", c)]
    assert "92.0" in cells  # laplacian's clean accuracy, 0.92, in percent
    assert "+2.0" in cells  # its difference from ce, in percentage points
    assert format_diff(0.0213, "accuracy") == "+2.1"


def _collections(fig) -> tuple[int, int]:
    ax = fig.axes[0]
    dots = sum(isinstance(c, PathCollection) for c in ax.collections)
    bands = sum(isinstance(c, PolyCollection) for c in ax.collections)
    return dots, bands


@pytest.mark.parametrize("networks", [5, DOTS_MAX + 1])
def test_curve_band_past_the_count(networks: int) -> None:
    rng = np.random.default_rng(0)
    rows = [{"method": m, "run_path": f"{m}{i}", "param_value": x,
             "value": rng.uniform(0.2, 0.9)}
            for m in ("ce", "laplacian") for i in range(networks) for x in (0.0, 10.0, 20.0)]
    fig = curve_figure(pd.DataFrame(rows), "t", "SNR", "accuracy (%)", "lower",
                       ["ce", "laplacian"], method_colors(["ce", "laplacian"], "ce"), "ce")
    dots, bands = _collections(fig)
    if networks > DOTS_MAX:  # no dot per network: a 10-90% band beside the IQR band
        assert (dots, bands) == (0, 4)
    else:  # one collection of dots per method, the IQR band each
        assert (dots, bands) == (2, 2)
        offsets = fig.axes[0].collections[-1].get_offsets()
        assert len(offsets) == networks * 3


def test_box_grid_fits_its_panels() -> None:
    assert panel_grid(5) == (3, 2)  # not 4 + 1
    assert [panel_grid(n) for n in (1, 3, 4, 6, 7, 8, 9)] == [
        (1, 1), (3, 1), (4, 1), (3, 2), (4, 2), (4, 2), (3, 3)]


def test_page_grows_by_at_most_a_line_per_run(tmp_path: Path) -> None:
    small = page_of(study(tmp_path / "a", 3), tmp_path / "out_a")
    large = page_of(study(tmp_path / "b", 23), tmp_path / "out_b")
    extra = 40  # runs
    # what is shown without opening anything does not grow with the runs
    assert outside_details(large).count("<tr") == outside_details(small).count("<tr")
    # and the bytes per run stay those of one table row
    per_run = (len(large.encode()) - len(small.encode())) / extra
    assert per_run < 600, per_run


def test_methods_show_resolved_values(tmp_path: Path) -> None:
    """An option left unset (None) is shown as the value the run recorded using."""
    root = study(tmp_path / "runs", 2)
    for run in root.glob("*laplacian*"):
        record = json.loads((run / "config.json").read_text())
        record["numerics"] = {"loss": {"gamma": 1.0, "form": "gram"}}
        (run / "config.json").write_text(json.dumps(record))
    page = page_of(root, tmp_path / "out")
    section = page[page.index('id="methods"'):page.index('id="settings"')]
    assert "gamma=1," in section and "gamma=None" not in section
    assert "<td>2</td>" in section  # its runs
