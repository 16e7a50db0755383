"""Option parsing helpers shared by the command modules."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import RbgError


def parse_int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise RbgError(f"{flag} expects comma-separated integers, got {text!r}") from None


def parse_key_values(items: list[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RbgError(f"{flag} expects key=value, got {item!r}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def parse_perturbation_settings(items: list[str] | None) -> dict[str, dict[str, str]]:
    """``["gaussian.snr_db=5,10", ...]`` to ``{"gaussian": {"snr_db": "5,10"}}``."""
    out: dict[str, dict[str, str]] = {}
    for item in items or []:
        target, sep, value = item.partition("=")
        name, dot, key = target.strip().rpartition(".")
        if not sep or not dot or not name or not key:
            raise RbgError(f"-p expects NAME.KEY=VALUE (e.g. gaussian.snr_db=5,10), got {item!r}")
        out.setdefault(name, {})[key.replace("-", "_")] = value.strip()
    return out


def ensure_writable_dir(path: Path, flag: str) -> Path:
    """Create ``path`` if needed and check that files can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".rbg-write-test", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError:
        raise RbgError(f"{flag} folder {path} is not writable") from None
    return path
