"""RobustBench-format checkpoints (docs/importing.md#robustbench-checkpoints).

RobustBench's model zoo, and most training scripts, save either a bare ``state_dict`` or a
checkpoint dictionary holding it (``{"state_dict": ..., "epoch": ...}``), often with every
name prefixed ``module.`` by ``nn.DataParallel`` or ``DistributedDataParallel``.
:func:`unwrap_checkpoint` gives the plain ``state_dict`` and says what it did, so that the
weights fit the network built from its code and a mismatch names the real keys.
"""

from __future__ import annotations

from typing import Any

from ..errors import RbgError
from ..lazy import torch

CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "net")  # tried in this order
PREFIXES = ("module.",)  # DataParallel's; stripped when every name has it


def _is_state(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def unwrap_checkpoint(obj: Any, where: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors by name of a bare ``state_dict`` or a checkpoint dictionary holding one,
    with ``module.`` prefixes stripped; returns them and what was done (for provenance).

    Raises:
        RbgError: ``obj`` holds no mapping of names to tensors.
    """
    notes: list[str] = []
    if isinstance(obj, dict) and not obj:
        return {}, notes  # no tensors: fits a network without any
    state = obj
    if isinstance(obj, dict) and not _is_state(obj):
        for key in CONTAINER_KEYS:
            if _is_state(obj.get(key)):
                state = obj[key]
                notes.append(f"unwrapped {key!r}")
                break
    if not _is_state(state):
        keys = ", ".join(repr(k) for k in list(obj)[:5]) if isinstance(obj, dict) else ""
        holds = f" (its keys: {keys})" if keys else f" (it holds a {type(obj).__name__})"
        raise RbgError(f"{where} is not a state_dict (a mapping of names to tensors) nor a "
                       f"checkpoint holding one under {', '.join(CONTAINER_KEYS)}{holds}")
    for prefix in PREFIXES:
        while all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
            notes.append(f"stripped {prefix!r}")
    if "" in state:
        raise RbgError(f"{where} holds a tensor with an empty name")
    return dict(state), notes
