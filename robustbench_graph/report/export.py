"""The report's tables for papers: ``tables.md`` (Markdown) and ``tables.tex`` (LaTeX,
booktabs). Each holds, per dataset/model, the headline (median over networks, ``*`` where
the Holm-corrected difference from the baseline is significant, the difference and its
bootstrap interval below) and the full table (median [q25–q75] over networks)."""

from __future__ import annotations

from pathlib import Path

from ..rundir.atomic import write_text_atomic
from .model import Headline, Report, Table

MARKDOWN = "tables.md"
LATEX = "tables.tex"


def _headline_rows(head: Headline) -> tuple[list[str], list[list[str]]]:
    header = ["method", "n", *(f"{c.label} ({c.unit})" for c in head.columns)]
    rows = []
    for m in head.methods:
        row = [m, str(head.n.get(m, ""))]
        for j in range(len(head.columns)):
            cell = head.cell(m, j)
            if cell is None:
                row.append("–")
            else:
                row.append(cell.text + (f" (Δ {cell.effect})" if cell.effect else ""))
        rows.append(row)
    return header, rows


def _full_rows(table: Table) -> tuple[list[str], list[list[str]]]:
    header = ["method", *(f"{c.label} ({c.unit})" for c in table.columns)]
    rows = [[m, *((table.cell(m, j).text if table.cell(m, j) else "–")
                  for j in range(len(table.columns)))] for m in table.methods]
    return header, rows


def _md(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
    return "\n".join([line(header), "|" + "|".join(["---"] + ["---:"] * (len(header) - 1))
                      + "|", *(line(r) for r in rows)]) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
        "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
        "–": "--", "Δ": r"$\Delta$", "ε": r"$\varepsilon$"}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in text)


def _tex(header: list[str], rows: list[list[str]], caption: str) -> str:
    spec = "l" + "r" * (len(header) - 1)
    body = "\n".join(" & ".join(tex_escape(c) for c in r) + r" \\" for r in rows)
    return (f"\\begin{{table}}[ht]\n\\centering\\small\n\\caption{{{tex_escape(caption)}}}\n"
            f"\\begin{{tabular}}{{{spec}}}\n\\toprule\n"
            + " & ".join(tex_escape(h) for h in header) + " \\\\\n\\midrule\n"
            + body + "\n\\bottomrule\n\\end{tabular}\n\\end{table}\n")


CLAIMS_NOTE = ("one-sided exact test on per-network values, Holm over the claims measured; "
               "effect: median of the method minus the baseline's, in the measure's unit "
               "(accuracies in percentage points), with its 95% cluster-bootstrap interval")


def _claims_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    header = ["claim", "source", "paper's number", "measured effect [95% CI]", "p (Holm)",
              "n", "verdict"]
    rows = [[f"{r.claim.id}: {r.claim.text} ({r.what})", r.claim.source or "–",
             r.claim.paper_value or "–", r.effect_text, r.p_text, r.n_text, r.verdict_text]
            for r in report.claims]
    return header, rows


def write_exports(report: Report, out_dir: Path) -> list[Path]:
    """Write ``tables.md`` and ``tables.tex`` (the declared claims first, where there are
    any); returns their paths."""
    md = [f"# rbg report: {report.runs_root}\n", report.footer + "\n"]
    tex = ["% rbg report tables; needs \\usepackage{booktabs}\n"]
    if report.claims:
        header, rows = _claims_rows(report)
        md += [f"## Claims ({CLAIMS_NOTE})\n", _md(header, rows)]
        tex.append(_tex(header, rows, f"Declared claims: {CLAIMS_NOTE}."))
    for head in report.headlines:
        header, rows = _headline_rows(head)
        md += [f"## {head.title}: headline\n", _md(header, rows)]
        tex.append(_tex(header, rows, f"{head.title}: headline. {report.footer}"))
    for table in report.tables:
        header, rows = _full_rows(table)
        md += [f"## {table.title}: every setting (median [q25–q75] over networks)\n",
               _md(header, rows)]
        tex.append(_tex(header, rows, f"{table.title}: every setting, median [q25--q75] "
                                      "over networks."))
    out = Path(out_dir)
    write_text_atomic(out / MARKDOWN, "\n".join(md))
    write_text_atomic(out / LATEX, "\n".join(tex))
    return [out / MARKDOWN, out / LATEX]
