"""The tidy results schema: one row per measurement, numbers stored as numbers.

``results.csv`` in each run folder holds rows with exactly :data:`COLUMNS`. A *cell* is one
(perturbation, param, param_value) setting with all its repeats and metrics; its ``settings``
column is the fingerprint of every setting that produced it, spelled out in the run's
``attack.json`` (:mod:`robustbench_graph.rundir.attack_record`). ``rbg attack`` reuses a cell only
under the same fingerprint. Files written before settings were recorded (no ``settings``
column) read with an empty fingerprint: settings unknown. Writes are atomic (temp file +
``os.replace``); a cell's rows are replaced in one write, never deleted ahead of their
replacement.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import RbgError
from ..lazy import LazyModule
from .atomic import atomic_write
from .folder import read_run_bytes

# pandas (half a second) is imported when a table is read or written, not by the modules
# that only name the columns or fingerprints (the perturbations' declarations, rbg list).
pd: Any = LazyModule("pandas")

COLUMNS: tuple[str, ...] = (
    "run", "dataset", "model", "loss", "seed",
    "perturbation", "param", "param_value", "repeat", "metric", "value", "n", "settings",
)
LEGACY_COLUMNS: tuple[str, ...] = COLUMNS[:-1]  # rbg 0.1 to 0.4: no settings recorded
UNRECORDED = ""  # the fingerprint of a cell whose settings were not recorded
NUMERIC: tuple[str, ...] = ("seed", "param_value", "repeat", "value", "n")
CELL_KEY: tuple[str, ...] = ("perturbation", "param", "param_value")
MAX_RESULTS_BYTES = 2**30
REQUIRED: tuple[str, ...] = tuple(c for c in COLUMNS if c not in ("value", "settings"))
TEXT: tuple[str, ...] = tuple(c for c in COLUMNS if c not in NUMERIC)
_FINGERPRINT = re.compile(r"^(?:[0-9a-f]{12})?$")


def empty_results() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64" if c in NUMERIC else "object")
                         for c in COLUMNS})


def validate(df: pd.DataFrame, source: Path | str) -> pd.DataFrame:
    """Check the columns and numeric types; raise a readable error naming ``source``."""
    if list(df.columns) == list(LEGACY_COLUMNS):
        df = df.assign(settings=UNRECORDED)
    if list(df.columns) != list(COLUMNS):
        foreign = sorted(set(df.columns) - set(COLUMNS))
        missing = sorted(set(COLUMNS) - set(df.columns))
        detail = (f"foreign columns {foreign}" if foreign else f"missing columns {missing}"
                  if missing else "columns out of order")
        raise RbgError(f"{source} is not an rbg results file ({detail})")
    dtypes = df.dtypes.to_dict()  # (reading each column as a Series costs more)
    for col in NUMERIC:
        if pd.api.types.is_float_dtype(dtypes[col]):  # parsed as numbers already
            continue
        if pd.api.types.is_integer_dtype(dtypes[col]):
            df[col] = df[col].astype("float64")
            continue
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() & df[col].notna()
        if bad.any():
            row = int(bad.idxmax()) + 2
            raise RbgError(f"{source}: non-numeric {col} {df[col][bad].iloc[0]!r} on line {row}")
        df[col] = values.astype("float64")
    for col in TEXT:
        if not pd.api.types.is_object_dtype(dtypes[col]):
            df[col] = df[col].astype("object")
    settings = df["settings"]
    if settings.isna().any() or not all(isinstance(x, str) for x in settings):
        df["settings"] = settings.fillna(UNRECORDED).astype(str).astype("object")
    return df


def read_results(path: Path) -> pd.DataFrame:
    """Read and validate one results file; a missing file is an empty table."""
    path = Path(path)
    try:
        raw = read_run_bytes(path, MAX_RESULTS_BYTES)
    except FileNotFoundError:
        return empty_results()
    try:
        df = pd.read_csv(io.BytesIO(raw), keep_default_na=False, na_values=[""],
                         encoding_errors="surrogateescape",
                         dtype={c: object for c in TEXT})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise RbgError(f"{path} is not a readable CSV ({str(err).splitlines()[0]})") from None
    return validate(df, path)


def repair(df: pd.DataFrame, expected_rows: Mapping[tuple[str, str, float], int]
           ) -> tuple[pd.DataFrame, list[str]]:
    """Drop damaged cells from a results table: rows with an empty required field or a
    malformed fingerprint (a line cut short), and every row of a cell whose row count differs
    from the one recorded when it was written (``expected_rows``, from ``attack.json``).
    Returns the clean table and what was dropped (empty when nothing was)."""
    if df.empty:
        return df, []
    damaged = df[list(REQUIRED)].isna().any(axis=1) | ~df["settings"].str.match(_FINGERPRINT)
    cells = df[list(CELL_KEY)]
    keys = [None if na else cell_key(*k) for na, k in
            zip(cells.isna().any(axis=1), cells.itertuples(index=False), strict=True)]
    bad_cells = {k for k, d in zip(keys, damaged, strict=True) if d and k is not None}
    counts = pd.Series([k for k in keys if k is not None]).value_counts().to_dict()
    bad_cells |= {k for k, n in expected_rows.items() if k in counts and counts[k] != n}
    drop = damaged.to_numpy() | [k in bad_cells for k in keys]
    if not drop.any():
        return df, []
    notes = [f"{int(drop.sum())} damaged or incomplete row(s) dropped"]
    if bad_cells:
        notes.append("cells to recompute: " + ", ".join(
            f"{p} {q}={v:g}" if q != "none" else p for p, q, v in sorted(bad_cells)))
    return df[~drop].reset_index(drop=True), notes


FLOAT_FORMAT = "%.10g"  # the 10 significant digits results.csv keeps


def as_saved(value: float) -> float:
    """``value`` as it reads back from ``results.csv`` (1/3 -> 0.3333333333)."""
    return float(FLOAT_FORMAT % float(value))


def write_results(path: Path, df: pd.DataFrame) -> None:
    atomic_write(Path(path), lambda p: df.to_csv(p, index=False, float_format=FLOAT_FORMAT,
                                                 errors="surrogateescape"))


def replace_cell(path: Path, key: tuple[str, str, float], rows: Iterable[Mapping[str, Any]],
                 current: pd.DataFrame | None = None) -> pd.DataFrame:
    """Put one cell's rows into ``path`` in one atomic write, in the place of any earlier rows
    of the same cell (else at the end); returns the whole table. ``current`` is the file's
    table when the caller has just read it (under the run's lock), else it is read here."""
    new = pd.DataFrame(list(rows), columns=list(COLUMNS))
    current = read_results(path) if current is None else current
    keys = [cell_key(*k) for k in current[list(CELL_KEY)].itertuples(index=False)]
    at = keys.index(key) if key in keys else len(keys)
    kept = current[[k != key for k in keys]]
    before, after = kept[kept.index < at], kept[kept.index >= at]
    parts = [p for p in (before, new, after) if not p.empty]
    table = pd.concat(parts, ignore_index=True) if parts else new
    table = validate(table, path)
    write_results(path, table)
    return table


def cell_key(perturbation: str, param: str, param_value: float) -> tuple[str, str, float]:
    return (str(perturbation), str(param), float(param_value))


def cell_fingerprints(df: pd.DataFrame) -> dict[tuple[str, str, float], set[str]]:
    """The settings fingerprints of every cell in a results table."""
    out: dict[tuple[str, str, float], set[str]] = {}
    for *key, fp in df[[*CELL_KEY, "settings"]].drop_duplicates().itertuples(index=False):
        out.setdefault(cell_key(*key), set()).add(str(fp))
    return out


def without_cells(df: pd.DataFrame, cells: Iterable[tuple[str, str, float]]) -> pd.DataFrame:
    drop = set(cells)
    keys = [cell_key(*k) for k in df[list(CELL_KEY)].itertuples(index=False)]
    return df[[k not in drop for k in keys]].reset_index(drop=True)
