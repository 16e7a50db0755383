"""The self-contained ``index.html``: tables, plots (embedded PNG), comparisons, provenance.

No external CSS or JavaScript; every piece of text goes through :func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .tables import Table, format_number, setting_label

if TYPE_CHECKING:
    from .build import Report

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 100em; }
h1, h2, h3 { font-weight: 600; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f3f3f3; }
td.name, th.name { text-align: left; }
td.best { font-weight: bold; background: #e3f4e3; }
.warn { color: #9a5b00; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
details pre { background: #f7f7f7; padding: 0.5em; overflow-x: auto; font-size: 0.8em; }
.note { color: #555; font-size: 0.9em; }
.scroll { overflow-x: auto; }
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(x: object, digits: int = 4) -> str:
    try:
        value = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return esc(x)
    return "–" if math.isnan(value) else esc(f"{value:.{digits}g}")


def _rows(header: Iterable[str], rows: Iterable[Iterable[str]], name_cols: int = 1) -> str:
    """A table from already escaped cells; the first ``name_cols`` columns align left."""
    head = "".join(f'<th class="name">{h}</th>' if i < name_cols else f"<th>{h}</th>"
                   for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="name">{c}</td>' if i < name_cols else f"<td>{c}</td>"
                         for i, c in enumerate(row)) + "</tr>\n"
        for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def headline_table(table: Table) -> str:
    head = '<th class="name">method</th>' + "".join(
        f"<th>{esc(c.label)}<br><small>{esc(c.unit)}</small></th>" for c in table.columns)
    body = []
    for method in table.methods:
        cells = [f'<td class="name">{esc(method)}</td>']
        for j in range(len(table.columns)):
            cell = table.cell(method, j)
            if cell is None:
                cells.append("<td>–</td>")
                continue
            tip = f"n={cell.n}" + ("" if math.isnan(cell.p_holm)
                                   else f", Holm p={cell.p_holm:.3g}")
            cls = ' class="best"' if cell.best else ""
            cells.append(f'<td{cls} title="{esc(tip)}">{esc(cell.text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>\n")
    return (f'<div class="scroll"><table class="headline">\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{''.join(body)}</tbody>\n</table></div>\n")


def _list(items: list[str], cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<ul{attr}>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>\n"


def _comparisons(report: Report) -> str:
    df = report.comparisons
    if df.empty:
        return '<p class="note">No comparisons (see the notes above).</p>\n'
    header = ["dataset", "model", "setting", "metric", "method", "n", "median",
              f"median {esc(report.baseline)}", "Δ median", "U", "p", "Holm p", "sig."]
    rows = ([esc(r.dataset), esc(r.model),
             esc(setting_label(r.perturbation, r.param, r.param_value, r.variant)),
             esc(r.metric),
             esc(r.method), esc(r.n), _num(r.median), _num(r.median_baseline),
             _num(r.diff_median), _num(r.u_statistic), _num(r.p_value, 3),
             _num(r.p_holm, 3), "*" if r.significant else ""]
            for r in df.itertuples(index=False))
    return _rows(header, rows, name_cols=5)


def _provenance(report: Report) -> str:
    rows, details = [], []
    for info in report.runs:
        record = info.record or {}
        train = record.get("train", {})
        versions = ", ".join(f"{k} {v}" for k, v in sorted(record.get("versions", {}).items()))
        options = train.get("loss_options") or {}
        rows.append([esc(info.run), esc(info.method or "–"), esc(info.seed), esc(info.status),
                     esc(train.get("dataset", "–")), esc(train.get("model", "–")),
                     esc(train.get("loss", "–")),
                     esc(", ".join(f"{k}={v}" for k, v in sorted(options.items())) or "–"),
                     esc(train.get("epochs", "–")), esc(info.rows), esc(versions or "–"),
                     esc(record.get("git_commit") or "–")])
        if record:
            text = json.dumps(record, indent=2, sort_keys=True, default=str)
            details.append(f"<details><summary>{esc(info.run)}</summary>"
                           f"<pre>{esc(text)}</pre></details>\n")
    commits = Counter(str((i.record or {}).get("git_commit") or "unknown") for i in report.runs)
    summary = "; ".join(f"{c} ({k} run{'s' if k > 1 else ''})" for c, k in commits.most_common())
    header = ["run", "method", "seed", "status", "dataset", "model", "loss", "loss options",
              "epochs", "result rows", "versions", "git commit"]
    return (f'<p class="note">Commits: {esc(summary)}</p>\n' + _rows(header, rows)
            + "<h3>Configurations</h3>\n" + "".join(details))


def _attack_settings(report: Report) -> str:
    """Every settings fingerprint in the results: its family, runs and settings."""
    used = report.results.groupby("settings", sort=True)
    header = ["fingerprint", "perturbation", "variant", "runs", "settings"]
    rows = []
    for fp, group in used:
        settings = report.settings.get(fp)
        if settings is None:
            text = "not recorded (computed before rbg recorded settings)" if fp == "" else "unknown"
        else:
            text = "; ".join(f"{k}={json.dumps(v)}" for k, v in sorted(settings.items()))
        variants = ", ".join(sorted(set(group["variant"]) - {""})) or "–"
        rows.append([esc(fp or "–"), esc(", ".join(sorted(set(group["perturbation"])))),
                     esc(variants), esc(group["run"].nunique()), esc(text)])
    return ('<p class="note">Every result carries the fingerprint of the settings that '
            "produced it; results of different settings are never pooled.</p>\n"
            + _rows(header, rows, name_cols=3))


def render_html(report: Report) -> str:
    """The whole page for ``report`` (plots embedded as base64 PNG)."""
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        f"<title>rbg report: {esc(report.runs_root)}</title>\n<style>{CSS}</style>\n",
        "</head>\n<body>\n<h1>rbg report</h1>\n",
        f'<p class="note">Runs: {esc(report.runs_root)} — {len(report.runs)} run folder(s), '
        f"{len(report.results)} result rows; baseline method: {esc(report.baseline)}; "
        f"generated by robustbench_graph {esc(report.version)} at {esc(report.created)}.</p>\n",
    ]
    if report.warnings:
        parts += ['<section id="warnings">\n<h2>Warnings</h2>\n',
                  _list(report.warnings, "warn"), "</section>\n"]
    if report.notes:
        parts += ['<section id="notes">\n<h2>Notes</h2>\n', _list(report.notes), "</section>\n"]
    failed = report.failed_runs
    if failed:
        parts += ['<section id="failed">\n<h2>Failed runs</h2>\n',
                  _rows(["run", "method", "seed", "message"],
                        ([esc(r.run), esc(r.method), esc(r.seed), esc(r.message or "–")]
                         for r in failed)),
                  "</section>\n"]
    parts.append('<section id="tables">\n<h2>Headline results</h2>\n'
                 f'<p class="note">Cells: median [q25–q75] over seeds and repeats pooled; '
                 f"accuracies in percent, DeepFool in L2. Bold: best per column. "
                 f"*: differs from {esc(report.baseline)} (Mann–Whitney U, Holm p &lt; "
                 f"{format_number(report.alpha)}).</p>\n")
    for table in report.tables:
        parts += [f"<h3>{esc(table.title)}</h3>\n", headline_table(table)]
    parts.append("</section>\n<section id=\"plots\">\n<h2>Plots</h2>\n")
    for plot in report.plots:
        data = base64.b64encode(plot.png_bytes).decode("ascii")
        caption = f"{plot.dataset} / {plot.model}: {plot.perturbation}"
        svg = f"plots/{plot.svg.name}"
        parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
                     f'<figcaption>{esc(caption)} (<a href="{esc(svg)}">SVG</a>)</figcaption>'
                     "</figure>\n")
    parts += ["</section>\n<section id=\"comparisons\">\n",
              f"<h2>Comparisons with {esc(report.baseline)}</h2>\n", _comparisons(report),
              "</section>\n<section id=\"settings\">\n<h2>Settings</h2>\n",
              _attack_settings(report),
              "</section>\n<section id=\"provenance\">\n<h2>Runs</h2>\n", _provenance(report),
              "</section>\n</body>\n</html>\n"]
    return "".join(parts)
