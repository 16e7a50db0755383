"""Write docs/reproduction.md: every claim of every shipped experiment file, what its paper
says, and what rbg measured, read from the reports of those files (nobody types a figure).

For each shipped experiment NAME, the measured columns come from ``RUNS/NAME/report/claims.csv``
(the report ``rbg run NAME --out RUNS/NAME`` writes); an experiment not run there gets its rows
with "not run yet" and the command that runs it. Usage::

    python scripts/reproduction.py [--runs RUNS] [--check]

``--check`` writes nothing and exits 1 when a shipped claim has no row in the page
(tests/test_docs.py runs it).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import pandas as pd

from robustbench_graph.experiment.spec import load, shipped_experiments
from robustbench_graph.report.declared import PERCENT_METRICS  # the families' percent metrics

PAGE = Path(__file__).resolve().parent.parent / "docs" / "reproduction.md"
INTRO = """# Reproduction: what each paper claims and what rbg measured

Every shipped experiment file declares its paper's claims (`[[claims]]`,
[experiments.md](experiments.md#claims)); `rbg run NAME` trains and attacks its grid and its
report tests them (one-sided exact tests on per-network values, Holm over the file's claims:
[statistics.md](statistics.md#claims)). This page is written by `scripts/reproduction.py` from
those reports' `claims.csv`; a claim that does not hold on our data is a result, reported with
its figures. Effects are the method's median minus the baseline's, accuracies in percentage
points; `n` is networks of the method + of the baseline; p is one-sided, Holm-adjusted over
the file's claims, in the claimed direction (the other way for a contradicted claim).
"""


def _number(value: float, percent: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:+.1f}" if percent else f"{value:+.3g}"


def _cell(text: object) -> str:
    value = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    return value.replace("|", "\\|").replace("\n", " ")


def _measured(row: pd.Series | None) -> list[str]:
    if row is None:
        return ["not run yet", "", "", "", ""]
    if row["verdict"] == "not measured":
        return ["–", "–", "–", "–", f"not measured: {_cell(row['note'])}"]
    percent = str(row["metric"]) in PERCENT_METRICS
    effect = _number(row["effect"], percent)
    if not (math.isnan(row["ci_low"]) or math.isnan(row["ci_high"])):
        effect += f" [{_number(row['ci_low'], percent)}, {_number(row['ci_high'], percent)}]"
    verdict = str(row["verdict"])
    p_holm = row["p_other_holm"] if verdict == "contradicted" else row["p_holm"]
    if verdict == "cannot be shown":
        verdict += f" (needs {int(row['needed'])} per method)"
    where = f"{row['dataset']}" if row["dataset"] else "–"
    return [where, f"{int(row['n_method'])}+{int(row['n_baseline'])}", effect,
            f"{p_holm:.3g}" if not math.isnan(p_holm) else "–", verdict]


def before_presets(folder: Path) -> list[str]:
    """The losses of the runs under ``folder`` trained before the grey loss presets at
    other options than their preset's (no ``loss_preset`` recorded)."""
    import json

    from robustbench_graph.losses import loss_preset, resolved_options

    old = set()
    for path in sorted(folder.glob("*/config.json")):
        record = json.loads(path.read_text())
        train = record.get("train", {})
        loss, dataset = str(train.get("loss", "")), train.get("dataset")
        if "loss_preset" not in record and loss_preset(loss, dataset) and (
                resolved_options(loss, train.get("loss_options", {}))
                != resolved_options(loss, {}, dataset)):
            old.add(loss)
    return sorted(old)


def section(name: str, runs: Path) -> str:
    exp = load(name)
    csv = runs / name / "report" / "claims.csv"
    rows = {}
    if csv.is_file():
        table = pd.read_csv(csv, keep_default_na=False, na_values=[""])
        rows = {str(r["id"]): r for _, r in table.iterrows()}
    ran = csv.is_file() or (runs / name / "report" / "summary.csv").is_file()
    lines = [f"## {name}", "", exp.description, "",
             f"Reproduce: `rbg run {name}`"
             + ("" if ran else " (not run for this page yet)") + ".", ""]
    if csv.is_file() and (old := before_presets(runs / name)):
        lines += ["Includes runs trained before the grey loss presets "
                  f"([losses.md](losses.md#presets)), at the papers' options: {', '.join(old)}; "
                  f"`rbg run {name}` today trains them at their presets.", ""]
    if not exp.claims:
        return "\n".join(lines + ["No claims declared.", ""])
    lines += ["| claim | the paper says | paper's number | dataset | n | effect [95% CI] "
              "| p (Holm) | verdict |", "|---|---|---|---|---|---|---|---|"]
    for claim in exp.claims:
        measured = _measured(rows.get(claim.id))
        lines.append(f"| `{claim.id}`: {_cell(claim.text)} | {_cell(claim.source)} "
                     f"| {_cell(claim.paper_value) or '–'} | " + " | ".join(measured) + " |")
    return "\n".join(lines + [""])


def render(runs: Path) -> str:
    return INTRO + "\n" + "\n".join(section(name, runs) for name in shipped_experiments())


def missing_rows(page: str) -> list[str]:
    """Shipped claims without a row in ``page``: ``NAME: id``."""
    missing = []
    parts = re.split(r"^## ", page, flags=re.M)
    sections = {p.split("\n", 1)[0].strip(): p for p in parts[1:]}
    for name in shipped_experiments():
        text = sections.get(name, "")
        for claim in load(name).claims:
            if f"| `{claim.id}`:" not in text:
                missing.append(f"{name}: {claim.id}")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"),
                        help="folder holding one runs folder per shipped experiment")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a shipped claim has no row in docs/reproduction.md")
    args = parser.parse_args(argv)
    if args.check:
        missing = missing_rows(PAGE.read_text())
        for item in missing:
            print(f"docs/reproduction.md has no row for {item}", file=sys.stderr)
        return 1 if missing else 0
    PAGE.write_text(render(args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
