"""What a family declares it reports: its metrics, how its swept strengths read, and the
median by which per-image values become one metric."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..lazy import torch


@dataclass(frozen=True)
class Metric:
    """A metric a family writes: ``better`` is ``higher``, ``lower`` or ``none`` (a diagnostic
    of the perturbation itself, e.g. the realised SNR: described, never compared)."""

    name: str
    better: str
    help: str
    percent: bool = False

    def __post_init__(self) -> None:
        if self.better not in ("higher", "lower", "none"):
            raise ValueError(f"metric {self.name}: better must be higher, lower or none")


@dataclass(frozen=True)
class Strength:
    """A swept setting as a reader sees it: ``label`` and ``unit`` for axes and captions
    (``SNR``, ``dB``), and which direction is the stronger perturbation (``stronger``:
    ``lower`` or ``higher``; curves put the strongest on the right)."""

    label: str
    unit: str = ""
    stronger: str = "higher"

    def text(self, value: float) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.label} {value:.4g}{unit}".strip()  # 1/3 reads 0.3333

    @property
    def axis_label(self) -> str:
        """``SNR (dB)``, ``bits``."""
        if self.label and self.unit:
            return f"{self.label} ({self.unit})"
        return self.label or self.unit


ACCURACY = Metric("accuracy", "higher", "fraction of the test images classified correctly",
                  percent=True)


def conventional_median(values: torch.Tensor) -> float:
    """The median, averaging the two middle values of an even count (``torch.median``
    returns the lower one)."""
    if values.numel() == 0:
        return math.nan
    return float(torch.quantile(values.double(), 0.5))

