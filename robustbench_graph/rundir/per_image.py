"""Per-image values a perturbation keeps beside its results (``<run>/per_image/``).

DeepFool keeps each attacked image's minimal adversarial distance (column ``distance``), from
which the report draws robust accuracy against ε; ``curvature`` keeps each image's κ and how
many noisy draws it survived. A file is named by its cell (perturbation, param, value) and the
cell's settings fingerprint, so results of other settings never mix; it holds the columns
``image`` (index into the test split) and ``label``, then the family's values, and is written
atomically before the cell's rows reach ``results.csv``.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from ..errors import RbgError
from .atomic import atomic_write
from .folder import read_run_bytes

FOLDER = "per_image"
KEY_COLUMNS = ("image", "label")
MAX_PER_IMAGE_BYTES = 2**30  # a per-image file beyond this is not rbg's


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
    there are none or they are unreadable (:func:`load_per_image` says why)."""
    path = per_image_path(run_dir, perturbation, param, param_value, fingerprint)
    try:
        return load_per_image(path, values)
    except (FileNotFoundError, RbgError):
        return None


def load_per_image(path: Path, values: tuple[str, ...] = ("distance",)) -> pd.DataFrame:
    """The per-image file ``path``, checked: a regular file of sane size (read through
    :func:`.folder.read_run_bytes`: a FIFO or a link to /dev/zero is refused, never read),
    CSV with the key columns first, the columns ``values``, and numbers in all of them (a
    distance ``abc`` would otherwise reach a figure as text).

    Raises:
        FileNotFoundError: there is no such file.
        RbgError: it is there but not a per-image file of these values, naming it.
    """
    raw = read_run_bytes(Path(path), MAX_PER_IMAGE_BYTES)
    try:
        table = pd.read_csv(io.BytesIO(raw))
    except (ValueError, pd.errors.ParserError):  # EmptyDataError, UnicodeDecodeError too
        raise RbgError(f"{path} is not a CSV file") from None
    if list(table.columns[:2]) != list(KEY_COLUMNS) or not set(values) <= set(table.columns):
        raise RbgError(f"{path} lacks the columns {', '.join([*KEY_COLUMNS, *values])}")
    for column in (*KEY_COLUMNS, *values):
        if not pd.api.types.is_numeric_dtype(table[column]) or \
                pd.api.types.is_bool_dtype(table[column]):
            raise RbgError(f"{path}: column {column!r} holds a value that is not a number")
    return table
