"""``attack.json``: the settings behind every cell of a run folder's ``results.csv``.

``settings`` maps each fingerprint (the ``settings`` column of ``results.csv``) to the family,
its version and every setting it stands for; ``cells`` says, per cell, which fingerprint its
rows carry and how they were computed (rbg version, device, batch size, seconds, when). A
fingerprint is written here before any row carrying it, under the run's lock, so every row's
settings can be looked up. Written atomically; an unreadable file is an error naming it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import RbgError
from ..settings import typed_text
from .atomic import write_json_atomic
from .folder import read_run_json

ATTACK_RECORD = "attack.json"
FORMAT = 1


def read_attack_record(run_dir: Path) -> dict[str, Any]:
    """The run's attack record (empty when none was written yet)."""
    path = Path(run_dir) / ATTACK_RECORD
    try:
        record = read_run_json(path)
    except FileNotFoundError:
        return {"format": FORMAT, "settings": {}, "cells": {}}
    if (not isinstance(record, dict) or not isinstance(record.get("settings"), dict)
            or not isinstance(record.get("cells"), dict)):
        raise RbgError(f"{path} is not an rbg attack record")
    return record


def settings_of(record: dict[str, Any], fingerprint: str) -> dict[str, Any] | None:
    """The settings a fingerprint stands for, or None when the record lacks it."""
    entry = record["settings"].get(fingerprint)
    return entry.get("settings") if isinstance(entry, dict) else None


def recorded_rows(record: dict[str, Any]) -> dict[tuple[str, str, float], int]:
    """The number of results rows each recorded cell was written with."""
    out = {}
    for entry in record["cells"].values():
        try:
            key = (str(entry["perturbation"]), str(entry["param"]), float(entry["param_value"]))
            out[key] = int(entry["rows"])
        except (KeyError, TypeError, ValueError):
            continue
    return out


def note_cell(run_dir: Path, cell: Any, provenance: dict[str, Any]) -> None:
    """Record ``cell``'s settings and how it was computed (call under the run's lock, before
    its rows are written; ``provenance`` includes ``rows``, the number written)."""
    record = read_attack_record(run_dir)
    record["format"] = FORMAT
    record["settings"][cell.fingerprint] = {
        "perturbation": cell.perturbation, "version": cell.version, "settings": cell.settings}
    record["cells"][cell.label] = {
        "perturbation": cell.perturbation, "param": cell.param,
        "param_value": cell.param_value, "settings": cell.fingerprint,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"), **provenance}
    write_json_atomic(Path(run_dir) / ATTACK_RECORD, record)


def settings_difference(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """``draws 2 -> 40, test_images.samples 50 -> None``: what differs between two settings."""
    if old is None:
        return "settings not recorded (computed by an older rbg)"
    a, b = flatten_settings(old), flatten_settings(new)
    parts = [f"{k} {show_setting(k, a.get(k))} -> {show_setting(k, b.get(k))}"
             for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(parts) or "code version"


def flatten_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``{"test_images.samples": 50, ...}``, lists as tuples."""
    out: dict[str, Any] = {}
    for k, v in settings.items():
        if isinstance(v, dict):
            out.update(flatten_settings(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = tuple(v) if isinstance(v, list) else v
    return out


def show_setting(key: str, value: Any) -> str:
    """A setting's value as a user types it (``all`` for an unset number of samples)."""
    if value is None and key.endswith("samples"):
        return "all"
    return typed_text(value)
