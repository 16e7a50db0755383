"""A cell: one setting of one family, the unit of attack work.

A :class:`Cell` is plain data; its ``fingerprint`` names its full settings (family, version and
every setting), so a cached result is reused only under the same settings.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cell:
    """One setting of one family: ``param = param_value`` plus the family's other settings."""

    perturbation: str
    param: str
    param_value: float
    settings: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    version: int = field(default=1, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str, float]:
        return (self.perturbation, self.param, float(self.param_value))

    @property
    def label(self) -> str:
        if self.param == "none":
            return self.perturbation
        return f"{self.perturbation} {self.param}={self.param_value:g}"

    @functools.cached_property
    def fingerprint(self) -> str:
        """12 hex digits naming the family, its version and every setting of the cell."""
        return settings_fingerprint(self.perturbation, self.version, self.settings)


def settings_fingerprint(perturbation: str, version: int, settings: dict[str, Any]) -> str:
    text = json.dumps({"perturbation": perturbation, "version": version,
                       "settings": settings}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]

