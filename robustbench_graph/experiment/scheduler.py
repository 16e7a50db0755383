"""The order units run in, shared by every executor: train units first, an attack unit as
soon as its run's training is done; the outcome every executor reports per unit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .units import Unit

Outcome = dict[str, Any]  # {"id", "status": done | skipped | failed, "seconds", "message"}
# Hears each outcome; an executor that knows when a unit starts (local) also sends
# {"id", "status": "started"} first (an event for progress displays, not an outcome).
OnOutcome = Callable[[Outcome], None]
STARTED = "started"


class Scheduler:
    """Which unit may start now: train units in order; an attack unit once its run's train
    unit is done, or at once when there is none in this batch (trained earlier)."""

    def __init__(self, units: list[Unit]) -> None:
        trained = {u.run_dir for u in units if u.kind == "train"}
        self.ready: list[Unit] = [u for u in units if u.kind == "train"]
        self.ready += [u for u in units if u.kind == "attack" and u.run_dir not in trained]
        self.waiting = {u.run_dir: u for u in units
                        if u.kind == "attack" and u.run_dir in trained}
        self.total = len(units)

    def next(self) -> Unit | None:
        return self.ready.pop(0) if self.ready else None

    def finished(self, unit: Unit, outcome: Outcome) -> list[Outcome]:
        """Record an outcome; returns outcomes of units that now cannot run (an attack of a
        run whose training failed)."""
        follow = self.waiting.pop(unit.run_dir, None) if unit.kind == "train" else None
        if follow is None:
            return []
        if outcome["status"] in ("done", "skipped"):
            # attacks first: they finish runs, so a report comes sooner
            self.ready.insert(0, follow)
            return []
        return [{"id": follow.id, "status": "failed", "seconds": 0.0,
                 "message": "not attacked: its training failed"}]
