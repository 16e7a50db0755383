"""Building blocks of the HTML page (escaped text, tables, lists) and its details sections:
every comparison, each method's configuration, every settings fingerprint and every run."""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Iterable

from .formatting import setting_label
from .model import Report


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def num(x: object, digits: int = 4) -> str:
    try:
        value = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return esc(x)
    return "–" if math.isnan(value) else esc(f"{value:.{digits}g}")


def html_table(header: Iterable[str], rows: Iterable[Iterable[str]], name_cols: int = 1) -> str:
    """A table from already escaped cells; the first ``name_cols`` columns align left."""
    head = "".join(f'<th class="name">{h}</th>' if i < name_cols else f"<th>{h}</th>"
                   for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="name">{c}</td>' if i < name_cols else f"<td>{c}</td>"
                         for i, c in enumerate(row)) + "</tr>\n"
        for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def bullets(items: list[str], cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<ul{attr}>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>\n"


def methods_section(report: Report) -> str:
    rows = []
    for name in report.methods:
        cfg = report.method_configs.get(name)
        if cfg is None:
            rows.append([esc(name), "–", "–"])
            continue
        options = ", ".join(f"{k}={v}" for k, v in cfg.loss_options) or "–"
        train = ", ".join(f"{k}={v}" for k, v in cfg.train)
        rows.append([esc(name), esc(options), esc(f"parseval={cfg.parseval}, {train}")])
    return ('<p class="note">A method is a whole training configuration (resolved, defaults '
            "filled in): runs that differ in anything but the seed are different methods, "
            "named by what differs from rbg's defaults.</p>\n"
            + html_table(["method", "loss options", "training"], rows))


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
             "test is on per-run values. p: two-sided Mann–Whitney, exact (every split of "
             "the runs enumerated) unless marked; Holm over every row. CI: 95% cluster "
             "bootstrap of the difference of medians (runs resampled). HL: Hodges–Lehmann "
             "shift.</p>\n")
    header = ["dataset", "model", "setting", "metric", "method", "n", "median",
              f"median {esc(report.baseline)}", "Δ median", "95% CI", "Cliff's δ", "HL",
              "U", "p", "Holm p", *([] if report.power else ["sig."])]
    rows = ([esc(r.dataset), esc(r.model),
             esc(setting_label(r.perturbation, r.param, r.param_value, r.variant)),
             esc(r.metric),
             esc(r.method), esc(f"{r.n} vs {r.n_baseline}"), num(r.median),
             num(r.median_baseline), num(r.diff_median),
             f"[{num(r.ci_low)}, {num(r.ci_high)}]", num(r.cliffs_delta, 2),
             num(r.hodges_lehmann), num(r.u_statistic),
             num(r.p_value, 3) + ("" if r.exact else " (approx.)"),
             num(r.p_holm, 3), *([] if report.power else ["*" if r.significant else ""])]
            for r in df.itertuples(index=False))
    return power + intro + '<div class="scroll">' + html_table(header, rows, name_cols=5) + "</div>"


def provenance_section(report: Report) -> str:
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
    return (f'<p class="note">Commits: {esc(summary)}</p>\n' + html_table(header, rows)
            + "<h3>Configurations</h3>\n" + "".join(details))


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
