"""Imported networks that run no code of the user's (docs/importing.md): a timm architecture
(``--timm NAME``) and an ONNX file (``--onnx FILE``, copied into the run folder as
``model.onnx``), beside the sources of :mod:`.user_code`. Like a torchvision model, they need
no trust: timm is a library of the user's environment, and an ONNX file is a graph of
standard operators that onnx2torch converts without running anything of the file's.

:func:`build` makes the network of any source; :func:`inspect_library_run` checks an
imported folder of these kinds against its record (the ONNX copy's and the stored weights'
SHA-256) before it is rebuilt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import RbgError
from ..lazy import nn
from ..models import onnx_source, timm_source
from .folder import CONFIG, MAX_WEIGHTS_BYTES, WEIGHTS, read_run_bytes
from .user_code import ModelSource, build_network, read_checked_copy, sha256_bytes

TIMM, ONNX = "timm", "onnx"
LIBRARY_KINDS = (TIMM, ONNX)  # sources of this module
ONNX_COPY = "model.onnx"  # the ONNX file, in an imported run folder


def label(source: ModelSource) -> str:
    """The model column of the results: ``timm.resnet18``, ``onnx.net.onnx``."""
    if source.kind == TIMM:
        return f"timm.{source.target}"
    if source.kind == ONNX:
        return f"onnx.{Path(source.target).name}"
    return source.label


def read_onnx(path: Path) -> bytes:
    """An ONNX file's bytes (what is converted and copied); nothing is converted."""
    onnx_source.require_onnx()
    try:
        return read_run_bytes(Path(path), MAX_WEIGHTS_BYTES)
    except FileNotFoundError:
        raise RbgError(f"ONNX file {path} does not exist") from None
    except IsADirectoryError:
        raise RbgError(f"ONNX file {path} is a folder") from None


def build(source: ModelSource, code: bytes | None, code_path: Path | None) -> nn.Module:
    """The network of ``source``: a timm architecture, an ONNX file's bytes (``code``,
    read from ``code_path``) converted, or :func:`.user_code.build_network`'s sources."""
    if source.kind == TIMM:
        return timm_source.build_timm(source.target, source.kwargs)
    if source.kind == ONNX:
        if code is None:
            raise RbgError(f"ONNX file {code_path or source.target} was not read")
        return onnx_source.convert(code, Path(code_path or source.target))
    return build_network(source, code, code_path)


def source_record(source: ModelSource, path: Path | None, sha: str | None) -> dict[str, Any]:
    """The ``imported.source`` record of a timm or ONNX source."""
    record: dict[str, Any] = {"kind": source.kind, "factory": None, "kwargs": source.kwargs}
    if source.kind == TIMM:
        record.update(architecture=source.target, timm=timm_source.version())
    else:
        record.update(path=str(Path(source.target).resolve()), sha256=sha, copy=ONNX_COPY,
                      **onnx_source.versions())
    return record


def inspect_library_run(run_dir: Path, record: dict[str, Any]
                        ) -> tuple[ModelSource, bytes | None, Path | None, bytes]:
    """A timm or ONNX run's source, ONNX bytes (its copy in the folder) and stored weights,
    each checked against the SHA-256 its record holds; nothing is run or converted."""
    try:
        src = record["imported"]["source"]
        stored = record["imported"]["weights"].get("stored_sha256")
        kind = src["kind"]
        target = src["architecture"] if kind == TIMM else src["path"]
        source = ModelSource(kind, str(target), None, dict(src.get("kwargs") or {}))
    except (KeyError, TypeError, AttributeError, ValueError):
        raise RbgError(f"{run_dir / CONFIG}: its 'imported' record is incomplete") from None
    code = code_path = None
    if kind == ONNX:
        code_path = run_dir / ONNX_COPY
        code = read_checked_copy(code_path, MAX_WEIGHTS_BYTES, src.get("sha256"), "ONNX file")
    try:
        weights = read_run_bytes(run_dir / WEIGHTS, MAX_WEIGHTS_BYTES)
    except FileNotFoundError:
        raise RbgError(f"missing weights file {run_dir / WEIGHTS}") from None
    if stored is not None and sha256_bytes(weights) != stored:
        raise RbgError(f"{run_dir / WEIGHTS} differs from the weights imported (SHA-256); "
                       "import the model again")
    return source, code, code_path, weights
