"""Declared claims: what a paper says a method does, as a hypothesis the report tests
(docs/statistics.md#claims).

A claim is one ``[[claims]]`` table of an experiment file (or of a claims file given to
``rbg report --claims``)::

    [[claims]]
    id = "lapnet-gaussian"
    text = "The Laplacian regulariser makes networks more robust to Gaussian noise than CE"
    method = "laplacian"              # method names as the report forms them
    baseline = "ce"
    measure = "gaussian@5"            # see MEASURE_FORMS
    direction = "higher"              # higher | lower | not-worse (with margin)
    source = "LapNet, Table 2"
    paper_value = "+8.9 pt"           # the paper's own number, where it has one

Plain data: this module parses and checks the form of a claim; whether its method, family and
strength exist is checked against an experiment's grid where the file is read
(:mod:`robustbench_graph.experiment.spec`), and against the runs by the report.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RbgError

DIRECTIONS = ("higher", "lower", "not-worse")
MEASURE_FORMS = (
    "clean (clean accuracy)",
    "FAMILY (its main metric at its headline strength)",
    "FAMILY@STRENGTH (at that strength)",
    "auc:FAMILY (the area under its curve)",
    "FAMILY:METRIC or FAMILY:METRIC@STRENGTH (another metric of the family)",
)
KEYS = ("id", "text", "method", "baseline", "measure", "direction", "margin", "dataset",
        "model", "source", "paper_value")
REQUIRED = ("id", "text", "method", "baseline", "measure", "direction")
MAX_CLAIMS = 1000
MAX_CLAIMS_FILE_BYTES = 2**20


@dataclass(frozen=True)
class Measure:
    """A parsed ``measure``: ``family`` (``clean`` for clean accuracy), an explicit
    ``strength`` or None (the family's headline strength), a ``metric`` or None (the family's
    main metric), and ``area`` for the curve's area."""

    text: str
    family: str
    strength: float | None = None
    metric: str | None = None
    area: bool = False


@dataclass(frozen=True)
class Claim:
    """One declared hypothesis: ``method`` against ``baseline`` on ``measure``."""

    id: str
    text: str
    method: str
    baseline: str
    measure: Measure
    direction: str
    margin: float | None = None  # not-worse: in the measure's unit (accuracy: a fraction)
    dataset: str | None = None
    model: str | None = None
    source: str = ""
    paper_value: str = ""


def parse_measure(text: str, where: str = "claim") -> Measure:
    """A :class:`Measure` from its text; a malformed one is an :class:`RbgError`."""
    raw = text.strip()
    bad = RbgError(f"{where}: measure {text!r} is not one of: {'; '.join(MEASURE_FORMS)}")
    if not raw:
        raise bad
    if raw.startswith("auc:"):
        family = raw[4:]
        if not family or any(c in family for c in ":@"):
            raise bad
        return Measure(raw, family, area=True)
    body, at, strength_text = raw.partition("@")
    strength = None
    if at:
        try:
            strength = float(strength_text)
        except ValueError:
            raise bad from None
        if not math.isfinite(strength):
            raise bad
    family, colon, metric = body.partition(":")
    if not family or (colon and not metric) or ":" in metric:
        raise bad
    if family == "clean" and (at or colon):
        raise bad
    return Measure(raw, family, strength, metric or None)


def _text(record: dict[str, Any], key: str, where: str, required: bool) -> str:
    value = record.get(key)
    if value is None:
        if required:
            raise RbgError(f"{where}: missing key {key!r}")
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise RbgError(f"{where}: {key} must be a non-empty string")
    return value.strip()


def parse_claim(record: Any, where: str) -> Claim:
    """One claim from its table, its form checked (one-line errors)."""
    if not isinstance(record, dict):
        raise RbgError(f"{where}: each [[claims]] entry must be a table")
    unknown = sorted(set(record) - set(KEYS))
    if unknown:
        raise RbgError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(KEYS)}")
    texts = {k: _text(record, k, where, k in REQUIRED)
             for k in KEYS if k not in ("margin",)}
    direction = texts["direction"]
    if direction not in DIRECTIONS:
        raise RbgError(f"{where}: direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    margin = record.get("margin")
    if margin is not None:
        if direction != "not-worse":
            raise RbgError(f"{where}: a margin goes with direction = \"not-worse\" only")
        if isinstance(margin, bool) or not isinstance(margin, int | float) \
                or not math.isfinite(margin) or margin < 0:
            raise RbgError(f"{where}: margin must be a number >= 0, in the measure's unit")
        margin = float(margin)
    elif direction == "not-worse":
        raise RbgError(f"{where}: direction \"not-worse\" needs a margin (in the measure's "
                       "unit, e.g. 0.01 for one point of accuracy)")
    if texts["method"] == texts["baseline"]:
        raise RbgError(f"{where}: method and baseline are the same ({texts['method']!r})")
    return Claim(
        id=texts["id"], text=texts["text"], method=texts["method"], baseline=texts["baseline"],
        measure=parse_measure(texts["measure"], where), direction=direction, margin=margin,
        dataset=texts["dataset"] or None, model=texts["model"] or None, source=texts["source"],
        paper_value=texts["paper_value"])


def parse_claims(records: Any, where: str) -> tuple[Claim, ...]:
    """The ``[[claims]]`` of a file: each checked, ids unique."""
    if records is None:
        return ()
    if not isinstance(records, list):
        raise RbgError(f"{where}: claims must be an array of tables ([[claims]])")
    if len(records) > MAX_CLAIMS:
        raise RbgError(f"{where}: {len(records)} claims; at most {MAX_CLAIMS}")
    claims = []
    seen: set[str] = set()
    for i, record in enumerate(records, 1):
        label = record.get("id") if isinstance(record, dict) else None
        claim = parse_claim(record, f"{where}: claim {label or i}")
        if claim.id in seen:
            raise RbgError(f"{where}: two claims have the id {claim.id!r}")
        seen.add(claim.id)
        claims.append(claim)
    return tuple(claims)


def load_claims(path: Path) -> tuple[Claim, ...]:
    """The claims of a TOML file (an experiment file, or a file of ``[[claims]]`` only)."""
    path = Path(path)
    try:
        if not path.is_file():
            raise RbgError(f"claims file {path} is not a readable file")
        if path.stat().st_size > MAX_CLAIMS_FILE_BYTES:
            raise RbgError(f"claims file {path} is larger than {MAX_CLAIMS_FILE_BYTES} bytes")
        record = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise RbgError(f"claims file {path} cannot be read ({err})") from None
    except (tomllib.TOMLDecodeError, RecursionError) as err:
        raise RbgError(f"claims file {path} is not valid TOML ({err})") from None
    claims = parse_claims(record.get("claims"), str(path))
    if not claims:
        raise RbgError(f"claims file {path} declares no [[claims]]")
    return claims
