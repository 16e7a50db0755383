"""Building blocks of the HTML page (escaped text, tables, lists) and its details sections:
every comparison, each method's configuration, every settings fingerprint and every run."""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Iterable

from .aggregate import base_metric
from .formatting import (
    format_diff,
    format_value,
    natural_key,
    setting_label,
    shown_option,
    value_unit,
)
from .model import Report


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def num(x: object, digits: int = 4) -> str:
    try:
        value = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return esc(x)
    return "–" if math.isnan(value) else esc(f"{value:.{digits}g}")


def html_table(header: Iterable[str], rows: Iterable[Iterable[str]], name_cols: int = 1,
               cls: str = "") -> str:
    """A table from already escaped cells; the first ``name_cols`` columns align left."""
    head = "".join(f'<th class="name">{h}</th>' if i < name_cols else f"<th>{h}</th>"
                   for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="name">{c}</td>' if i < name_cols else f"<td>{c}</td>"
                         for i, c in enumerate(row)) + "</tr>\n"
        for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return (f"<table{attr}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n"
            "</table>\n")


def bullets(items: list[str], cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<ul{attr}>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>\n"


def resolved_options(options: Iterable[tuple[str, object]], record: dict | None
                     ) -> list[tuple[str, object]]:
    """A method's loss options with each unset (None) option replaced by the value its run
    recorded as used (``numerics.loss``, ``resolved``), where it did."""
    record = record or {}
    used = {**(record.get("numerics") or {}).get("loss", {}), **(record.get("resolved") or {})}
    return [(k, used.get(k, v) if v is None else v) for k, v in options]


def methods_section(report: Report) -> str:
    """One line per method: its runs, its loss options (resolved values) and the training
    settings that differ from rbg's defaults (every setting in the tooltip)."""
    runs: dict[str, list] = {}
    for info in report.runs:
        runs.setdefault(info.method or "", []).append(info)
    rows = []
    for name in report.methods:
        cfg = report.method_configs.get(name)
        if cfg is None:
            rows.append(f'<tr><td class="name">{esc(name)}</td><td>–</td><td>–</td><td>–</td>'
                        "</tr>\n")
            continue
        first = next((r.record for r in runs.get(name, []) if r.record), None)
        options = ", ".join(f"{k}={shown_option(v)}"
                            for k, v in resolved_options(cfg.loss_options, first)) or "–"
        defaults = dict(cfg.defaults)
        every = ", ".join(f"{k}={shown_option(v)}" for k, v in cfg.train)
        changed = ", ".join(f"{k}={shown_option(v)}" for k, v in cfg.train
                            if v != defaults.get(k)) or "rbg's defaults"
        rows.append(f'<tr><td class="name">{esc(name)}</td><td>{len(runs.get(name, []))}</td>'
                    f'<td class="name">{esc(options)}</td><td class="name" title="{esc(every)}">'
                    f"{esc(f'parseval={cfg.parseval}, {changed}')}</td></tr>\n")
    return ('<p class="note">A method is a whole training configuration (resolved, defaults '
            "filled in): runs that differ in anything but the seed are different methods, "
            "named by what differs from rbg's defaults. Training: the settings that differ "
            "from rbg's defaults (hover for every setting).</p>\n<table>\n<thead><tr>"
            '<th class="name">method</th><th>runs</th><th class="name">loss options</th>'
            '<th class="name">training</th>'
            f"</tr></thead>\n<tbody>\n{''.join(rows)}</tbody>\n</table>\n")


VERDICT_CLASS = {"supported": "v-yes", "contradicted": "v-no", "not shown": "v-none",
                 "cannot be shown": "v-cannot", "not measured": "v-none"}
CLAIMS_CSS = """
table.claims td { vertical-align: top; }
table.claims td.name { max-width: 32em; }
td.v-yes { background: #d8f0d8; color: #1d5e1d; font-weight: 600; }
td.v-no { background: #f8d7d7; color: #8a1c1c; font-weight: 600; }
td.v-none { background: #ececec; color: #555; }
td.v-cannot { background: #fbe8c8; color: #7a4a00; }
"""


def claims_section(report: Report) -> str:
    """The declared claims, each with its effect, Holm p, networks and coloured verdict."""
    rows = report.claims
    tested = sum(r.measured for r in rows)
    intro = ('<p class="note">Each claim is tested one-sided on per-network values (exact '
             "permutation test of Mann–Whitney's U), Holm over the "
             f"{tested} claim{'s' if tested != 1 else ''} measured, apart from the comparisons "
             f"below; α = {report.alpha:g}. Effect: median of the method minus median of the "
             "baseline, in the measure's unit (accuracies in percentage points), with its 95% "
             "cluster-bootstrap interval. p: Holm-adjusted, in the claimed direction (the "
             "other way for a contradicted claim). n: networks of method vs baseline.</p>\n")
    body = []
    for r in rows:
        tip = esc(r.note)
        cells = [f"<b>{esc(r.claim.id)}</b>: {esc(r.claim.text)}<br><small>{esc(r.what)}"
                 "</small>", esc(r.claim.source or "–"), esc(r.claim.paper_value or "–"),
                 esc(r.effect_text), esc(r.p_text), esc(r.n_text)]
        body.append("<tr>" + f'<td class="name">{cells[0]}</td>'
                    + "".join(f"<td>{c}</td>" for c in cells[1:])
                    + f'<td class="{VERDICT_CLASS.get(r.verdict, "v-none")}" title="{tip}">'
                    f"{esc(r.verdict_text)}"
                    + ("" if r.measured else f"<br><small>{tip}</small>") + "</td></tr>\n")
    header = ('<th class="name">claim</th><th>source</th><th>paper\'s number</th>'
              "<th>measured effect [95% CI]</th><th>p (Holm)</th><th>n</th><th>verdict</th>")
    return ('<section id="claims">\n<h2>Claims</h2>\n' + intro
            + f'<div class="scroll"><table class="claims">\n<thead><tr>{header}</tr></thead>\n'
            f"<tbody>\n{''.join(body)}</tbody>\n</table></div>\n</section>\n")


def comparisons_section(report: Report) -> str:
    df = report.comparisons
    if df.empty:
        return '<p class="note">No comparisons (see the notes above).</p>\n'
    power = f'<p class="note"><b>{esc(report.power)}</b></p>\n' if report.power else ""
    intro = ('<p class="note">n: networks (runs) of the method and of the baseline; every '
             "test is on per-run values. Values in the row's unit: accuracies in % and their "
             "differences (Δ, CI, HL) in percentage points (pp). p: two-sided Mann–Whitney, "
             "exact (every split of the runs enumerated) unless marked; Holm over every row. "
             "CI: 95% cluster bootstrap of the difference of medians (runs resampled). HL: "
             "Hodges–Lehmann shift.</p>\n")
    header = ["dataset", "model", "setting", "metric", "method", "unit", "n", "median",
              f"median {esc(report.baseline)}", "Δ median", "95% CI", "Cliff's δ", "HL",
              "U", "p", "Holm p", *([] if report.power else ["sig."])]

    def unit(metric: str) -> str:
        u = value_unit(metric)
        return "% (Δ in pp)" if u == "%" else u or "–"
    rows = []
    for r in df.itertuples(index=False):
        m = base_metric(str(r.metric))  # a curve's area is in its metric's unit
        rows.append([
            esc(r.dataset), esc(r.model),
            esc(setting_label(r.perturbation, r.param, r.param_value, r.variant)),
            esc(r.metric), esc(r.method), esc(unit(m)), esc(f"{r.n} vs {r.n_baseline}"),
            esc(format_value(r.median, m)), esc(format_value(r.median_baseline, m)),
            esc(format_diff(r.diff_median, m)),
            esc(f"[{format_diff(r.ci_low, m)}, {format_diff(r.ci_high, m)}]"),
            num(r.cliffs_delta, 2), esc(format_diff(r.hodges_lehmann, m)), num(r.u_statistic),
            num(r.p_value, 3) + ("" if r.exact else " (approx.)"), num(r.p_holm, 3),
            *([] if report.power else ["*" if r.significant else ""])])
    return (power + intro + '<div class="scroll">'
            + html_table(header, rows, name_cols=6, cls="oneline") + "</div>")


def _record_line(record: dict) -> str:
    """A run's provenance for a tooltip: dataset, model, loss options, versions, commit."""
    train = record.get("train", {})
    options = ", ".join(f"{k}={shown_option(v)}"
                        for k, v in sorted((train.get("loss_options") or {}).items()))
    versions = ", ".join(f"{k} {v}" for k, v in sorted(record.get("versions", {}).items()))
    return (f"{train.get('dataset', '–')} / {train.get('model', '–')}; loss "
            f"{train.get('loss', '–')} ({options or 'no options'}); {versions or 'no versions'}"
            f"; commit {record.get('git_commit') or 'unknown'}")


def _flat(record: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = json.dumps(v, sort_keys=True, default=str)
    return out


def provenance_section(report: Report) -> str:
    """Every run, one line each, naturally sorted (``seed2`` before ``seed10``), and one
    configuration per method (its first run's ``config.json``, with the fields that vary
    among its runs named), both collapsed: the page grows by no line per run."""
    runs = sorted(report.runs, key=lambda i: natural_key(i.run))
    rows = []
    for info in runs:
        record = info.record or {}
        tip = esc(_record_line(record) + (f"; {info.message}" if info.message else ""))
        rows.append(f'<tr title="{tip}"><td class="name">{esc(info.run)}</td>'
                    f"<td>{esc(info.method or '–')}</td><td>{esc(info.seed)}</td>"
                    f"<td>{esc(info.status)}</td>"
                    f"<td>{esc(record.get('train', {}).get('epochs', '–'))}</td>"
                    f"<td>{esc(info.rows)}</td></tr>\n")
    commits = Counter(str((i.record or {}).get("git_commit") or "unknown") for i in report.runs)
    summary = "; ".join(f"{c} ({k} run{'s' if k > 1 else ''})" for c, k in commits.most_common())
    statuses = ", ".join(f"{k} {s}" for s, k in Counter(i.status for i in runs).most_common())
    by_method: dict[str, list] = {}
    for info in runs:
        if info.record:
            by_method.setdefault(info.method or "–", []).append(info.record)
    configs = []
    for method in sorted(by_method, key=natural_key):
        records = by_method[method]
        flats = [_flat(r) for r in records]
        keys = sorted({k for f in flats for k in f})
        varying = [k for k in keys if len({f.get(k) for f in flats}) > 1]
        text = json.dumps(records[0], indent=2, sort_keys=True, default=str)
        configs.append(f"<details><summary>{esc(method)}: {len(records)} run"
                       f"{'s' if len(records) > 1 else ''}; differ in "
                       f"{esc(', '.join(varying) or 'nothing')}</summary>"
                       f"<pre>{esc(text)}</pre></details>\n")
    header = '<th class="name">run</th>' + "".join(
        f"<th>{h}</th>" for h in ("method", "seed", "status", "epochs", "result rows"))
    return (f'<p class="note">Commits: {esc(summary)}</p>\n'
            f"<details><summary>{len(runs)} run folder{'s' if len(runs) != 1 else ''} "
            f"({esc(statuses or 'none')}), one line each; hover a run for its versions and "
            "commit</summary>\n"
            f'<table class="oneline">\n<thead><tr>{header}</tr></thead>\n<tbody>\n'
            f"{''.join(rows)}</tbody>\n</table>\n</details>\n"
            f"<details><summary>Configurations: one per method ({len(configs)}), the first "
            "run's config.json; every run's is in its folder</summary>\n"
            + "".join(configs) + "</details>\n")


def settings_section(report: Report) -> str:
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
            + html_table(header, rows, name_cols=3))
