"""Per-image values a perturbation keeps beside its results (``<run>/per_image/``).

DeepFool keeps each attacked image's minimal adversarial distance (column ``distance``), from
which the report draws robust accuracy against ε; ``curvature`` keeps each image's κ and how
many noisy draws it survived. A file is named by its cell (perturbation, param, value) and the
cell's settings fingerprint, so results of other settings never mix; it holds the columns
``image`` (index into the test split) and ``label``, then the family's values, and is written
atomically before the cell's rows reach ``results.csv``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .atomic import atomic_write

FOLDER = "per_image"
KEY_COLUMNS = ("image", "label")


def per_image_path(run_dir: Path, perturbation: str, param: str, param_value: float,
                   fingerprint: str) -> Path:
    return (Path(run_dir) / FOLDER
            / f"{perturbation}-{param}={float(param_value):g}-{fingerprint}.csv")


def write_per_image(path: Path, table: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    values = [c for c in table.columns if c not in KEY_COLUMNS]
    atomic_write(path, lambda p: table[[*KEY_COLUMNS, *values]].to_csv(
        p, index=False, float_format="%.9g"))


def read_per_image(run_dir: Path, perturbation: str, param: str, param_value: float,
                   fingerprint: str, values: tuple[str, ...] = ("distance",)
                   ) -> pd.DataFrame | None:
    """The kept values of one cell (with at least the columns ``values``), or None where
    there are none (or they are unreadable: the report then draws no curve from them)."""
    path = per_image_path(run_dir, perturbation, param, param_value, fingerprint)
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    if list(table.columns[:2]) != list(KEY_COLUMNS) or not set(values) <= set(table.columns):
        return None
    return table
