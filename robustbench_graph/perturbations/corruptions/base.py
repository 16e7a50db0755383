"""What both corruption families share: a cell per (corruption, severity), severity 0 the
identity, and a seed per (run, corruption, draw) that does not depend on the severity (the
same random draw at every severity, so a curve over severity compares like with like)."""

from __future__ import annotations

from typing import ClassVar

from ...config import ImageSubset, stable_seed
from ...settings import to_json
from ..cell import Cell
from ..checks import require
from ..context import Draw
from ..family import Perturbation
from ..metrics import Strength
from ..report_extras import ErrorSummary

SEVERITIES = (1, 2, 3, 4, 5)
MAX_SEVERITY = 5


def severity_strengths(names: tuple[str, ...]) -> dict[str, Strength]:
    """How each corruption's cells read: ``gaussian noise severity 3`` (the curve's axis)."""
    return {n: Strength(f"{n.replace('_', ' ')} severity") for n in names}


def check_choice(family: str, corruptions: tuple[str, ...], severities: tuple[int, ...],
                 known: tuple[str, ...], draws: int) -> None:
    require(bool(corruptions), f"{family} needs at least one corruption")
    for name in corruptions:
        require(name in known, f"unknown {family} corruption {name!r}; valid: "
                f"{', '.join(known)}")
    require(bool(severities), f"{family} needs at least one severity")
    for s in severities:
        require(0 <= s <= MAX_SEVERITY, f"{family} severity {s} is out of range 0..5 "
                "(0: the clean images)")
    require(0 < draws <= 10_000, f"draws must be in 1..10000, got {draws}")


class CorruptionFamily(Perturbation):
    """A family whose cells are ``param = <corruption>``, ``param_value = <severity>``."""

    sweep = "severity"
    repeats_setting = "draws"
    headline_setting = {"grey": 3.0, "colour": 3.0}
    # The mean error over severities 1-5 per corruption, their mean and the mCE (Hendrycks &
    # Dietterich, ICLR 2019; relative to the report's baseline).
    report_extras = (ErrorSummary("accuracy", 1.0, "corruptions", "severities", "mCE"),)
    names: ClassVar[tuple[str, ...]] = ()

    def cells(self, test_images: ImageSubset) -> list[Cell]:
        """One cell per (corruption, severity), corruption-major; the other settings and the
        test images are the cells' common settings (the chosen corruptions and severities are
        not: a cell's fingerprint names only its own)."""
        common = to_json(self.settings)
        corruptions, severities = common.pop("corruption"), common.pop("severity")
        common["test_images"] = to_json(test_images)
        return [Cell(self.name, c, float(s), common, self.version)
                for c in dict.fromkeys(corruptions) for s in dict.fromkeys(severities)]

    def passes(self, images: int) -> tuple[int, int]:
        """One forward per image, draw and cell: a cell per (corruption, severity), not per
        severity alone as the base class counts (11 times too few on mnist-c's defaults)."""
        s = self.settings
        cells = len(dict.fromkeys(s.corruption)) * len(dict.fromkeys(s.severity))
        return images * cells * self.repeats(), 0

    @staticmethod
    def draw_seed(draw: Draw) -> int:
        """The seed of one draw of one corruption of one run, the same at every severity."""
        return stable_seed(draw.ctx.run, draw.cell.perturbation, draw.cell.param, draw.repeat)

    @staticmethod
    def severity(draw: Draw) -> int:
        return int(draw.cell.param_value)
