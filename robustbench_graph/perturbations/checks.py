"""Checks of a family's settings, failing with one line a user can act on."""

from __future__ import annotations

from ..errors import RbgError


def require(condition: bool, message: str) -> None:
    """Raise :class:`RbgError` with ``message`` unless ``condition`` (settings checks)."""
    if not condition:
        raise RbgError(message)


def require_draws(draws: int) -> None:
    """The random families' ``draws`` setting: 1 to 100,000 draws per cell."""
    require(0 < draws <= 100_000, f"draws must be in 1..100000, got {draws}")

