"""``rbg report --export tensorboard``: TensorBoard event files (docs/exporting.md).

Under ``<report>/tensorboard/``, one log folder per network (``runs/<run>``) holds every
per-network value of ``networks.csv`` as scalars: a curve (one setting swept over strengths)
as tag ``<perturbation>/<param>/<metric>`` at steps 0, 1, ... in increasing strength value,
its strengths as ``<perturbation>/<param>/strength`` at the same steps (TensorBoard's steps
are integers, so the strength itself is a scalar beside the curve); a value with no strength
(``clean/accuracy``, a curve's area ``.../accuracy_auc``) at step 0. A variant of the
settings follows the param in brackets. ``figures/`` holds the report's figures (with
plots on) as images, tag ``<dataset>/<model>/<figure>``. Exporting again replaces the event
files of these folders.
"""

from __future__ import annotations

import math
import re
import struct
import time
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import RbgError
from .model import Report

EXTRA_MESSAGE = ("the tensorboard export needs the optional extra: pip install "
                 "'robustbench_graph[tensorboard]'")
FOLDER = "tensorboard"
EVENTS = "events.out.tfevents.*"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]")


def load_tensorboard() -> tuple[Any, Any, Any]:
    """tensorboard's event writer, ``Event`` and ``Summary``. Raises RbgError (one line)
    when the extra is missing."""
    try:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise RbgError(EXTRA_MESSAGE) from None
    return EventFileWriter, Event, Summary


def scalar_events(rows: pd.DataFrame) -> list[tuple[str, int, float]]:
    """A network's ``networks.csv`` rows as (tag, step, value) scalars (module docstring)."""
    out: list[tuple[str, int, float]] = []
    keys = ["perturbation", "param", "variant"]
    for (perturbation, param, variant), group in rows.groupby(keys, sort=False, dropna=False):
        base = str(perturbation) if param == "none" else f"{perturbation}/{param}"
        base += f" [{variant}]" if variant else ""
        swept = group.dropna(subset=["param_value"])
        strengths = sorted(set(swept["param_value"].astype(float))) if param != "none" else []
        step_of = {s: i for i, s in enumerate(strengths)}
        for r in group.itertuples(index=False):
            value = float(r.param_value)
            step = 0 if param == "none" or math.isnan(value) else step_of[value]
            out.append((f"{base}/{r.metric}", step, float(r.value)))
        out += [(f"{base}/strength", i, s) for i, s in enumerate(strengths)]
    return out


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        raise RbgError("a report figure is not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _writer(folder: Path) -> Any:
    writer_cls, _event, _summary = load_tensorboard()
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(EVENTS):
        old.unlink()
    return writer_cls(str(folder))


def write_tensorboard(report: Report, out_dir: Path) -> list[Path]:
    """Write the event files; returns their log folders."""
    _writer_cls, event_cls, summary_cls = load_tensorboard()
    root = Path(out_dir) / FOLDER
    folders: list[Path] = []
    now = time.time()
    infos = {str(r.path): r.run for r in report.runs}
    nets = report.networks
    used: set[str] = set()
    for run_path, rows in ([] if nets is None else nets.groupby("run_path", sort=False)):
        name = _UNSAFE.sub("_", infos.get(str(run_path), Path(str(run_path)).name))
        while name in used:
            name += "_"
        used.add(name)
        folder = root / "runs" / name
        writer = _writer(folder)
        for tag, step, value in scalar_events(rows):
            summary = summary_cls(value=[summary_cls.Value(tag=tag, simple_value=value)])
            writer.add_event(event_cls(wall_time=now, step=step, summary=summary))
        writer.close()
        folders.append(folder)
    if report.plots:
        folder = root / "figures"
        writer = _writer(folder)
        for plot in report.plots:
            width, height = png_size(plot.png_bytes)
            image = summary_cls.Image(height=height, width=width, colorspace=4,
                                      encoded_image_string=plot.png_bytes)
            tag = f"{plot.dataset}/{plot.model}/{plot.name}"
            summary = summary_cls(value=[summary_cls.Value(tag=tag, image=image)])
            writer.add_event(event_cls(wall_time=now, step=0, summary=summary))
        writer.close()
        folders.append(folder)
    return folders
