"""Replacing a run folder without losing anything else (``rbg import --overwrite``).

A folder is replaced only once it is proven a run folder of rbg's: a ``config.json`` with a
``train`` record and nothing but rbg's run files (docs/run-folder.md; the per-image side files
in ``per_image/`` included) — never a folder of runs, of notes, or the folder the command
works in or one above it. The new run is written beside the target (never inside it); the old
folder is moved aside, the new one put in its place, then the old one's run files removed one
by one (never a whole tree), so a file that appeared meanwhile is kept.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import stat
import tempfile
from pathlib import Path

from ..errors import RbgError
from .attack_record import ATTACK_RECORD
from .folder import (
    CHECKPOINT,
    CONFIG,
    LOSS_STATE,
    RESULTS,
    STATUS,
    TRAIN_LOG,
    WEIGHTS,
    read_run_json,
)
from .per_image import FOLDER as PER_IMAGE
from .user_code import SOURCE_COPY

RUN_FILES = frozenset({CONFIG, WEIGHTS, LOSS_STATE, TRAIN_LOG, STATUS, CHECKPOINT, RESULTS,
                       ATTACK_RECORD, SOURCE_COPY,
                       "model.onnx",  # an imported ONNX file (ecosystem.ONNX_COPY)
                       ".rbg.lock",  # the attack's lock (attack.LOCK)
                       ".rbg-attack-failed.json"})  # an experiment's failed attack unit
RUN_PATTERNS = (".*.tmp",  # an atomic write's temp file (.atomic)
                ".autoattack-*.state")  # AutoAttack's resume state
PER_IMAGE_PATTERNS = ("*.csv", ".*.tmp")


def _is_file(path: Path) -> bool:
    return stat.S_ISREG(path.lstat().st_mode)


def _foreign(folder: Path) -> str | None:
    """What in ``folder`` is not an rbg run file (None when everything is)."""
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if name == PER_IMAGE and entry.is_dir() and not entry.is_symlink():
            for side in sorted(entry.iterdir()):
                if not (_is_file(side) and any(fnmatch.fnmatchcase(side.name, p)
                                               for p in PER_IMAGE_PATTERNS)):
                    return f"{PER_IMAGE}/{side.name}"
            continue
        if not (_is_file(entry) and (name in RUN_FILES or any(
                fnmatch.fnmatchcase(name, p) for p in RUN_PATTERNS))):
            return f"{name}/" if entry.is_dir() else name
    return None


def check_target(run_dir: Path, overwrite: bool) -> Path:
    """The absolute folder a new run may be written to: a new path, an empty folder, or
    (with ``overwrite``) a proven run folder; returns it resolved.

    Raises:
        RbgError: anything else, naming why (nothing is touched).
    """
    if run_dir.is_symlink():
        raise RbgError(f"{run_dir} is a symbolic link; name the run folder itself")
    target = run_dir.resolve()
    if target.parent == target:
        raise RbgError(f"{run_dir} is the file system's root, not a run folder")
    if not os.path.lexists(target):
        return target
    if not target.is_dir():
        raise RbgError(f"{run_dir} exists and is not a folder; use another name")
    cwd = Path.cwd().resolve()
    if cwd == target or target in cwd.parents:
        raise RbgError(f"{run_dir} is the folder you are working in or one above it; name "
                       "a new run folder instead")
    try:
        empty = not any(target.iterdir())
        if empty:
            return target
        if not overwrite:
            raise RbgError(f"{run_dir} already exists and is not empty; use another folder "
                           "or --overwrite")
        what = _foreign(target)
    except OSError as err:
        raise RbgError(f"{run_dir} cannot be read ({err.strerror})") from None
    if what is not None:
        raise RbgError(f"{run_dir} is not an rbg run folder (it holds {what}); --overwrite "
                       "replaces only a run folder, so choose another folder")
    try:
        record = read_run_json(target / CONFIG)
    except FileNotFoundError:
        record = None
    except RbgError as err:
        raise RbgError(f"{run_dir} is not an rbg run folder ({err})") from None
    if not isinstance(record, dict) or not isinstance(record.get("train"), dict):
        raise RbgError(f"{run_dir} is not an rbg run folder (no rbg {CONFIG}); --overwrite "
                       "replaces only a run folder, so choose another folder")
    return target


def _remove_run_files(folder: Path) -> None:
    """Remove an old run folder's rbg files, one by one, then the folder if empty."""
    for entry in folder.iterdir():
        with contextlib.suppress(OSError):
            if entry.name == PER_IMAGE and entry.is_dir() and not entry.is_symlink():
                for side in entry.iterdir():
                    if _is_file(side):
                        side.unlink()
                entry.rmdir()
            elif _is_file(entry) and (entry.name in RUN_FILES or any(
                    fnmatch.fnmatchcase(entry.name, p) for p in RUN_PATTERNS)):
                entry.unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()


def replace_folder(new: Path, target: Path) -> None:
    """Put the folder ``new`` (beside ``target``) at ``target``: an empty folder there is
    replaced, a run folder (checked by :func:`check_target`) moved aside and its files
    removed once the new one is in place."""
    if not os.path.lexists(target) or not any(target.iterdir()):
        os.replace(new, target)  # a missing or empty folder: one rename
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.replaced-", dir=target.parent))
    os.replace(target, aside)  # onto the empty folder just made
    try:
        os.replace(new, target)
    except OSError:
        os.replace(aside, target)
        raise
    _remove_run_files(aside)
