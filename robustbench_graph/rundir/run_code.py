"""What loading an imported run folder runs, checked before any of it runs
(docs/models.md#trusting-code-in-run-folders): its code (``model_source.py``, or a module's
file) and its weights against the SHA-256 values its record holds, and whether this user
trusts that code (:mod:`.trust`): :func:`inspect_run`, :func:`run_code`, :func:`trust_run`,
:func:`untrusted_runs`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RbgError
from .folder import CONFIG, MAX_WEIGHTS_BYTES, WEIGHTS, read_config, read_run_bytes
from .trust import is_trusted, record_trust
from .user_code import (
    CODE_KINDS,
    KINDS,
    MAX_SOURCE_BYTES,
    SOURCE_COPY,
    ModelSource,
    is_imported,
    locate_module,
    read_checked_copy,
    sha256_bytes,
    sha256_of,
)


@dataclass(frozen=True)
class RunCode:
    """What loading an imported run folder runs, read and checked against its record
    (hashes of the code and the weights) with nothing run: see :func:`inspect_run`."""

    run_dir: Path
    source: ModelSource
    imported: dict[str, Any]  # config.json's import record
    code: bytes | None  # model_source.py's bytes (a file source)
    code_path: Path | None  # model_source.py, or the module's file
    code_sha256: str | None
    weights: bytes  # model.safetensors's bytes
    weights_sha256: str

    @property
    def runs_code(self) -> bool:
        return self.source.kind in CODE_KINDS

    @property
    def trusted(self) -> bool:
        return not self.runs_code or is_trusted(self.imported, self.code_sha256,
                                                self.weights_sha256)

    def describe(self) -> list[str]:
        """What will run, for ``rbg trust``: the code's file and hash, the factory call."""
        args = ", ".join(f"{k}={json.dumps(v)}" for k, v in self.source.kwargs.items())
        lines = [f"{self.run_dir} runs, each time it is loaded:"]
        if self.source.kind == "file":
            lines.append(f"  the model file {self.code_path} (SHA-256 {self.code_sha256})")
        else:
            lines.append(f"  module {self.source.target!r} from {self.code_path} (SHA-256 "
                         f"{self.code_sha256}), after its packages' __init__ files")
        lines.append(f"  its factory {self.source.factory}({args})")
        lines.append(f"  with the weights {Path(self.run_dir) / WEIGHTS} (SHA-256 "
                     f"{self.weights_sha256})")
        return lines


def _source_of(run_dir: Path, imported: Any) -> tuple[ModelSource, dict[str, Any]]:
    try:
        src = imported["source"]
        kwargs = src.get("kwargs") or {}
        source = ModelSource(src["kind"], src.get("architecture") or src.get("module")
                             or src.get("path") or "", src.get("factory"), dict(kwargs))
        if not isinstance(kwargs, dict) or not isinstance(imported["weights"], dict):
            raise TypeError
    except (KeyError, TypeError, AttributeError, ValueError):
        raise RbgError(f"{run_dir / CONFIG}: its 'imported' record is incomplete") from None
    if source.kind not in KINDS:
        raise RbgError(f"{run_dir / CONFIG}: unknown model source kind {source.kind!r}")
    if source.kind in CODE_KINDS and not (isinstance(source.factory, str)
                                          and source.factory.isidentifier()):
        raise RbgError(f"{run_dir / CONFIG}: its factory {source.factory!r} is not a name")
    return source, src


def inspect_run(run_dir: Path, record: dict[str, Any]) -> RunCode:
    """An imported run's code and weights, checked against the SHA-256 values its record
    holds (a file source's copy, a module's file, the stored weights); nothing is run.

    Raises:
        RbgError: a record that is incomplete, or code or weights that differ from it.
    """
    run_dir = Path(run_dir)
    imported = record.get("imported")
    source, src = _source_of(run_dir, imported)
    code = code_path = code_sha = None
    if source.kind == "file":
        code_path = run_dir / SOURCE_COPY
        code = read_checked_copy(code_path, MAX_SOURCE_BYTES, src.get("sha256"), "source")
        code_sha = src["sha256"]
    elif source.kind == "module":
        try:
            code_path = locate_module(source.target)
        except RbgError as err:
            raise RbgError(f"{run_dir / CONFIG}: {err}") from None
        code_sha = sha256_of(code_path)
        if code_sha != src.get("sha256"):
            raise RbgError(f"module {source.target!r} ({code_path}) changed since it was "
                           f"imported into {run_dir} (SHA-256 differs); import it again")
    weights_path = run_dir / WEIGHTS
    try:
        weights = read_run_bytes(weights_path, MAX_WEIGHTS_BYTES)
    except FileNotFoundError:
        raise RbgError(f"missing weights file {weights_path}") from None
    weights_sha = sha256_bytes(weights)
    stored = imported["weights"].get("stored_sha256")
    if stored is not None and stored != weights_sha:
        raise RbgError(f"{weights_path} differs from the weights imported (SHA-256); import "
                       "the model again")
    return RunCode(run_dir, source, imported, code, code_path, code_sha, weights, weights_sha)


def untrusted_message(runs: list[Path]) -> str:
    """The one line refusing to run the code of ``runs``, saying how to trust it."""
    if len(runs) == 1:
        who, how = f"{runs[0]} builds its model", f"'rbg trust {runs[0]}'"
    else:
        who = f"{len(runs)} run folders ({runs[0]}, ...) build their model"
        how = "'rbg trust RUN'"
    return (f"{who} by running code you have not trusted (made elsewhere or changed since); "
            f"see what runs and trust it with {how}, or pass --trust-code")


def untrusted_runs(run_dirs: list[Path]) -> list[Path]:
    """The imported runs among ``run_dirs`` whose code this user has not trusted (runs that
    cannot be read or checked are left to the command that loads them)."""
    found = []
    for run_dir in run_dirs:
        try:
            record = read_config(run_dir)
            if is_imported(record) and not inspect_run(run_dir, record).trusted:
                found.append(Path(run_dir))
        except RbgError:
            continue
    return found


def run_code(run_dir: Path) -> RunCode | None:
    """:func:`inspect_run` of a run folder; None for a run that is not imported."""
    record = read_config(Path(run_dir))
    return inspect_run(Path(run_dir), record) if is_imported(record) else None


def trust_run(code: RunCode) -> Path:
    """Record that this user trusts the folder's code as it is now (``rbg trust``)."""
    return record_trust(code.run_dir, code.imported, code.code_sha256, code.weights_sha256,
                        "rbg trust")
