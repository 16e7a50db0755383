"""Progress of many units (runs to train or attack, units of an experiment) that holds at
hundreds: one overall bar with the count, the time per unit so far and the time left, a
bounded window of the units in flight, then a totals line. Not on a terminal (a log file,
a pipe), one plain line per finished unit, never truncated."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

WINDOW = 6  # units in flight shown at most; the others are counted in one line


def clock(seconds: float) -> str:
    """``0:04:05`` (``1d 2:03:04`` past a day)."""
    s = int(round(max(seconds, 0.0)))
    days, s = divmod(s, 86400)
    text = f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{days}d {text}" if days else text


@dataclass
class _Flight:
    started: float
    info: str = ""
    fraction: float = 0.0  # of this unit done


class StudyProgress:
    """Use as a context manager; :meth:`start`, :meth:`update` and :meth:`finish` each unit
    (``finish`` with ``skipped`` for one already done: it does not count in the rate)."""

    def __init__(self, console: Console, total: int, noun: str = "runs", *,
                 plain: bool | None = None, window: int = WINDOW) -> None:
        self.console, self.total, self.noun = console, total, noun
        self.plain = (not console.is_terminal) if plain is None else plain
        self.window = window
        self.counts: Counter[str] = Counter()
        self.flights: dict[str, _Flight] = {}
        self.t0 = time.perf_counter()
        self._live: Live | None = None

    # The numbers ---------------------------------------------------------------------------
    @property
    def finished(self) -> int:
        return sum(self.counts.values())

    def per_unit(self) -> float | None:
        """Wall seconds per unit of work so far (skipped units aside; the units in flight
        count by their fraction done), once one unit has finished."""
        worked = self.finished - self.counts["skipped"]
        progress = worked + sum(f.fraction for f in self.flights.values())
        if worked < 1 or progress <= 0:
            return None
        return (time.perf_counter() - self.t0) / progress

    def eta(self) -> float | None:
        rate = self.per_unit()
        if rate is None:
            return None
        left = self.total - self.finished - sum(f.fraction for f in self.flights.values())
        return rate * max(left, 0.0)

    def head(self) -> str:
        """``12/400 runs · 3.1 s/run · 0:20:00 left · 0:00:37 elapsed``."""
        parts = [f"{self.finished}/{self.total} {self.noun}"]
        if (rate := self.per_unit()) is not None:
            parts.append(f"{rate:.1f} s/{self.noun.rstrip('s') or 'unit'}")
        eta = self.eta()
        parts.append(f"{clock(eta)} left" if eta is not None
                     else "time left: after the first unit")
        parts.append(f"{clock(time.perf_counter() - self.t0)} elapsed")
        return " · ".join(parts)

    def totals(self) -> str:
        """``done 10 · failed 1 · skipped 1 · running 2 · pending 386``."""
        order = ["done", "failed", "skipped", *sorted(set(self.counts) - {"done", "failed",
                                                                          "skipped"})]
        parts = [f"{k} {self.counts[k]}" for k in order if self.counts[k]]
        if self.flights:
            parts.append(f"running {len(self.flights)}")
        pending = self.total - self.finished - len(self.flights)
        if pending > 0:
            parts.append(f"pending {pending}")
        return " · ".join(parts) or "nothing to do"

    # The events ----------------------------------------------------------------------------
    def start(self, name: str, info: str = "") -> None:
        self.flights[name] = _Flight(time.perf_counter(), info)
        self._refresh()

    def update(self, name: str, info: str, fraction: float | None = None) -> None:
        flight = self.flights.setdefault(name, _Flight(time.perf_counter()))
        flight.info = info
        if fraction is not None:
            flight.fraction = min(max(fraction, 0.0), 1.0)

    def finish(self, name: str, status: str, seconds: float | None = None,
               note: str = "") -> None:
        flight = self.flights.pop(name, None)
        if seconds is None and flight is not None:
            seconds = time.perf_counter() - flight.started
        self.counts[status] += 1
        if self.plain and self.total > 1:  # one unit: its own output says it all
            text = f"[{self.finished}/{self.total}] {name}: {status}"
            if seconds and status != "skipped":
                text += f" in {seconds:.1f} s"
            if note:
                text += f" ({note})"
            eta = self.eta()
            if eta is not None and self.finished < self.total:
                text += f"; {clock(eta)} left"
            self.console.print(text, highlight=False, markup=False, soft_wrap=True)
        self._refresh()

    def line(self, text: str) -> None:
        """A line above the live display (plain: a line), never truncated."""
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    # The display ---------------------------------------------------------------------------
    def __rich__(self) -> Group:
        done = self.finished + sum(f.fraction for f in self.flights.values())
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=max(self.total, 1), completed=done, width=30),
                    Text(self.head()))
        rows: list = [bar]
        now = time.perf_counter()
        flights = list(self.flights.items())
        for name, f in flights[:self.window]:
            rows.append(Text(f"  {name}  {f.info}  {clock(now - f.started)}".rstrip(),
                             overflow="ellipsis", no_wrap=True))
        if len(flights) > self.window:
            rows.append(Text(f"  … and {len(flights) - self.window} more in flight"))
        rows.append(Text(self.totals(), style="dim"))
        return Group(*rows)

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def __enter__(self) -> StudyProgress:
        self.t0 = time.perf_counter()
        if not self.plain:
            self._live = Live(self, console=self.console, refresh_per_second=2,
                              transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None
