"""The self-contained ``index.html``, read top-down: the question (methods, baseline, data,
networks), the declared claims' verdicts (where there are claims), the headline with effect
sizes and intervals, the curves, the boxes, then the details and provenance (the full table,
every comparison, each method's configuration, every cell's settings, every run).

No external CSS or JavaScript; every piece of text goes through :func:`html.escape`.
"""

from __future__ import annotations

import base64
import math

from .formatting import family_title, format_number, natural_key, units_note
from .html_parts import (
    CLAIMS_CSS,
    bullets,
    claims_section,
    comparisons_section,
    esc,
    html_table,
    methods_section,
    provenance_section,
    settings_section,
)
from .model import Headline, PlotFile, Report, Table
from .plots import DOTS_MAX

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; color: #222; max-width: 84em;
       padding: 0 1em; }
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
.scroll { overflow-x: auto; max-width: 100%; }
.scroll td.name, .scroll th.name { position: sticky; left: 0; background: #fff; }
.scroll th.name { background: #f3f3f3; }
table.headline td small { display: block; color: #555; font-size: 0.8em; }
table.headline th { max-width: 8em; font-weight: 600; }
table.headline caption { text-align: left; font-size: 0.9em; color: #555; padding: 0.2em 0; }
.question { font-size: 1.05em; background: #f6f8fa; padding: 0.6em 1em; border-radius: 4px; }
figure.curve { display: inline-block; width: 48%; min-width: 28em; vertical-align: top; }
table.oneline td, table.oneline th { white-space: nowrap; }
details > summary { cursor: pointer; margin: 0.3em 0; }
"""


def table_html(table: Table) -> str:
    """An every-setting (or declared summary) table: ``median [q25–q75]`` cells, tooltips
    with n and the Holm p."""
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


def headline_html(head: Headline) -> str:
    """The headline of one dataset/model, as two tables that fit the page (the headline
    settings, then the curves' areas): median over networks, Δ from the baseline with its
    interval beneath, tooltips with the full label, n, Cliff's delta and the Holm p."""
    groups = [[j for j, c in enumerate(head.columns) if not c.is_area],
              [j for j, c in enumerate(head.columns) if c.is_area]]
    out = []
    for k, cols in enumerate(groups):
        if not cols:
            continue
        caption = ("at the headline settings" if k == 0 else "area under each curve") + (
            f"; {units_note(c.perturbation for c in head.columns)}, Δ in percentage points")
        header = ('<th class="name">method</th><th>n</th>' + "".join(
            f'<th title="{esc(head.columns[j].label)} ({esc(head.columns[j].unit)})">'
            f"{esc(family_title(head.columns[j].perturbation))}<br><small>"
            f"{esc(head.columns[j].short[-1])}</small></th>" for j in cols))
        body = []
        for method in head.methods:
            cells = [f'<td class="name">{esc(method)}</td><td>{esc(head.n.get(method, ""))}'
                     "</td>"]
            for j in cols:
                cell = head.cell(method, j)
                if cell is None:
                    cells.append("<td>–</td>")
                    continue
                tip = f"{head.columns[j].label}: n={cell.n} networks"
                if not math.isnan(cell.p_holm):
                    tip += f", Cliff's delta={cell.cliffs_delta:+.2f}, Holm p={cell.p_holm:.3g}"
                cls = ' class="best"' if cell.best else ""
                diff, _, interval = cell.effect.partition(" ")
                effect = (f"<small>Δ {esc(diff)}</small><small>{esc(interval)}</small>"
                          if cell.effect else "")
                cells.append(f'<td{cls} title="{esc(tip)}">{esc(cell.text)}{effect}</td>')
            body.append("<tr>" + "".join(cells) + "</tr>\n")
        out.append(f'<div class="scroll"><table class="headline">\n<caption>{caption}'
                   f"</caption>\n<thead><tr>{header}</tr></thead>\n<tbody>\n{''.join(body)}"
                   "</tbody>\n</table></div>\n")
    missing = (f'<p class="note">Not measured: {esc("; ".join(head.missing))}.</p>\n'
               if head.missing else "")
    return "".join(out) + missing


def _families(report: Report) -> list[str]:
    """The perturbation families the report has results of."""
    return sorted(set(report.results["perturbation"])) if len(report.results) else []


def _question(report: Report) -> str:
    data = sorted({f"{h.dataset} / {h.model}" for h in report.headlines})
    nets = "; ".join(f"{m}: {max((h.n.get(m, 0) for h in report.headlines), default=0)}"
                     for m in report.methods)
    others = [m for m in report.methods if m != report.baseline]
    # a study of clean accuracy only (a parity study) asks about accuracy, not robustness
    clean_only = all(c.perturbation == "clean" for h in report.headlines for c in h.columns)
    asked = "as accurate as" if clean_only else "more robust than"
    return (f'<p class="question">Is each of <b>{esc(", ".join(others) or "–")}</b> {asked} '
            f"the baseline <b>{esc(report.baseline)}</b>, by how much, and how "
            f"sure are we? Data / model: {esc(', '.join(data))}. Networks (seeds) per method: "
            f"{esc(nets)}.</p>\n")


def _figures(plots: list[PlotFile], kind: str, cls: str = "") -> str:
    out = []
    for plot in plots:
        if plot.kind != kind:
            continue
        data = base64.b64encode(plot.png_bytes).decode("ascii")
        caption = plot.caption
        svg = f"plots/{plot.svg.name}"
        attr = f' class="{cls}"' if cls else ""
        out.append(f'<figure{attr}><img src="data:image/png;base64,{data}" '
                   f'alt="{esc(caption)}"><figcaption>{esc(caption)} '
                   f'(<a href="{esc(svg)}">SVG</a>)</figcaption></figure>\n')
    return "".join(out) or '<p class="note">None.</p>\n'


def _smoothness(report: Report) -> str:
    if report.smoothness is None:
        return ""
    data = base64.b64encode(report.smoothness.png_bytes).decode("ascii")
    return ('<section id="smoothness">\n<h2>Smoothness of the representations</h2>\n'
            f'<figure><img src="data:image/png;base64,{data}" alt="smoothness">'
            f"<figcaption>{esc(report.smoothness.path)} (rbg smoothness)</figcaption>"
            "</figure>\n</section>\n")


def render_html(report: Report) -> str:
    """The whole page for ``report`` (plots embedded as base64 PNG)."""
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        f"<title>rbg report: {esc(report.runs_root)}</title>\n"
        f"<style>{CSS}{CLAIMS_CSS if report.claims else ''}</style>\n",
        "</head>\n<body>\n<h1>rbg report</h1>\n", _question(report),
        claims_section(report) if report.claims else "",
        f'<p class="note">Runs: {esc(report.runs_root)} — {len(report.runs)} run folder(s), '
        f"{len(report.results)} result rows; generated by robustbench_graph "
        f"{esc(report.version)} at {esc(report.created)}.</p>\n",
    ]
    if report.warnings:
        parts += ['<section id="warnings">\n<h2>Warnings</h2>\n',
                  bullets(report.warnings, "warn"), "</section>\n"]
    parts.append('<section id="headline">\n<h2>Headline</h2>\n'
                 f'<p class="note">{esc(report.footer)} Bold: best per column. Hover a cell '
                 "for Cliff's delta and the Holm p.</p>\n")
    for head in report.headlines:
        parts += [f"<h3>{esc(head.title)}</h3>\n", headline_html(head)]
    parts.append("</section>\n")
    if report.notes:
        parts += ['<section id="notes">\n<h2>Notes</h2>\n', bullets(report.notes), "</section>\n"]
    failed = report.failed_runs
    if failed:
        parts += ['<section id="failed">\n<h2>Failed runs</h2>\n<details><summary>'
                  f"{len(failed)} failed run{'s' if len(failed) > 1 else ''}</summary>\n",
                  html_table(["run", "method", "seed", "message"],
                             ([esc(r.run), esc(r.method), esc(r.seed), esc(r.message or "–")]
                              for r in sorted(failed, key=lambda r: natural_key(r.run))),
                             cls="oneline"),
                  "</details>\n</section>\n"]
    parts += ['<section id="curves">\n<h2>Curves over strength</h2>\n'
              '<p class="note">Lines: median over networks; dark bands: interquartile range '
              f"over networks; dots: one network each, or past {DOTS_MAX} networks a light "
              "band of the 10th–90th percentiles instead; the baseline is black and dashed."
              "</p>\n",
              _figures(report.plots, "curve", "curve"),
              '</section>\n<section id="boxes">\n<h2>Headline settings, every draw</h2>\n',
              _figures(report.plots, "box"), "</section>\n", _smoothness(report),
              '<section id="tables">\n<h2>Every setting</h2>\n'
              '<p class="note">Cells: median [q25–q75] over networks (each network\'s draws '
              f"averaged first); {esc(units_note(_families(report)))}. Bold: best per column. "
              f"*: differs from {esc(report.baseline)} (Mann–Whitney on per-run values, Holm "
              f"p &lt; {format_number(report.alpha)}). The pooled draws are in summary.csv "
              "(draws_* columns), for description only.</p>\n"]
    for table in report.tables:
        parts += [f"<h3>{esc(table.title)}</h3>\n", table_html(table)]
    parts += ["</section>\n<section id=\"comparisons\">\n",
              f"<h2>Comparisons with {esc(report.baseline)}</h2>\n", comparisons_section(report),
              "</section>\n<section id=\"methods\">\n<h2>Methods</h2>\n", methods_section(report),
              "</section>\n<section id=\"settings\">\n<h2>Settings</h2>\n",
              settings_section(report),
              "</section>\n<section id=\"provenance\">\n<h2>Runs</h2>\n",
              provenance_section(report),
              "</section>\n</body>\n</html>\n"]
    return "".join(parts)
