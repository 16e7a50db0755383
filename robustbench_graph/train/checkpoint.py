"""The training checkpoint (``checkpoint.pt``): the state of the last finished epoch (and, for
``--select best-val``, the best validation epoch so far with its weights, ``best``), written
atomically behind a header (magic, SHA-256 of the payload, the run's fingerprint), so that a
killed run resumes and a damaged or foreign checkpoint is refused before use."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch

from ..errors import RbgError
from ..rundir.atomic import atomic_write
from ..rundir.folder import read_run_bytes
from .spec import RunSpec

CHECKPOINT_MAGIC = b"rbg-checkpoint 1\n"
MAX_CHECKPOINT_BYTES = 2**34  # 16 GiB: a wide PreActResNet18's weights and SGD state


def run_fingerprint(spec: RunSpec) -> str:
    """16 hex digits naming the run's training configuration and seed."""
    text = json.dumps({"train": spec.config.to_dict(), "seed": spec.seed}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_checkpoint(path: Path, state: dict, fingerprint: str) -> None:
    """``state`` as torch bytes behind a header: magic, the SHA-256 of those bytes and the
    run's fingerprint, so that a damaged or foreign checkpoint is refused before use."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    header = CHECKPOINT_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + \
        fingerprint.encode() + b"\n"
    atomic_write(path, lambda p: p.write_bytes(header + payload))


def load_checkpoint(path: Path, fingerprint: str, epochs: int) -> dict:
    """The checkpoint's state after checking its header, checksum, fingerprint and contents
    (tensors only: ``weights_only``); anything else is refused in one line."""
    def refuse(why: str) -> RbgError:
        return RbgError(f"cannot resume from {path}: {why}; use --overwrite to restart")

    raw = read_run_bytes(path, MAX_CHECKPOINT_BYTES)
    if not raw.startswith(CHECKPOINT_MAGIC):
        raise refuse("not an rbg checkpoint (no rbg header)")
    lines = raw[len(CHECKPOINT_MAGIC):].split(b"\n", 2)
    if len(lines) != 3:
        raise refuse("its header is cut short")
    digest, owner, payload = lines
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise refuse("its checksum does not match (the file is damaged)")
    if owner.decode(errors="replace") != fingerprint:
        raise refuse("it belongs to another configuration or seed")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - whatever torch refuses, rbg refuses
        raise refuse(f"torch cannot read it safely ({type(err).__name__})") from None
    keys = {"epoch", "model", "optimizer", "scheduler", "loss", "log"}
    if not isinstance(state, dict) or not keys <= set(state):
        raise refuse("it lacks " + ", ".join(sorted(keys - set(state or {}))))
    epoch = state["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < epochs:
        raise refuse(f"its epoch {epoch!r} is outside 0..{epochs - 1}")
    return state
