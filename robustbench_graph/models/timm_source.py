"""timm architectures for ``rbg import --timm NAME`` (docs/importing.md#timm).

The network is built with ``timm.create_model(NAME, pretrained=False, **kwargs)``: nothing is
downloaded, the weights come from a local file. timm's networks take normalised inputs (its
data pipeline normalises), so an imported timm model is ``--input normalized`` unless told
otherwise, with the mean/std its ``pretrained_cfg`` declares where they fit the dataset's
channels, else the dataset's (:func:`declared_statistics`). timm is an optional extra
(``pip install 'robustbench_graph[timm]'``).
"""

from __future__ import annotations

import math
import types
from collections.abc import Sequence
from typing import Any

from ..errors import RbgError
from ..lazy import nn

EXTRA = "timm"


def require_timm() -> types.ModuleType:
    """The ``timm`` package, or one line saying how to install it."""
    try:
        import timm
    except ImportError:
        raise RbgError("--timm needs the package timm, which is not installed: pip install "
                       "'robustbench_graph[timm]'") from None
    return timm


def version() -> str:
    return str(require_timm().__version__)


def build_timm(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """``timm.create_model(name, pretrained=False, **kwargs)``; an unknown name or
    arguments that do not fit it are one line."""
    timm = require_timm()
    if not timm.is_model(name):
        close = timm.list_models(f"*{name[:6]}*")[:5] if name else []
        hint = f" (close: {', '.join(close)})" if close else ""
        raise RbgError(f"unknown timm architecture {name!r}{hint}; see timm.list_models()")
    if "pretrained" in kwargs or "pretrained_cfg_overlay" in kwargs:
        raise RbgError("--timm builds without pretrained weights (nothing is downloaded); give "
                       "the weights with --weights, not --kw pretrained=...")
    try:
        net = timm.create_model(name, pretrained=False, **kwargs)
    except (KeyboardInterrupt, RbgError):
        raise
    except Exception as err:  # noqa: BLE001 - timm raises many kinds for bad arguments
        first = (str(err).strip().splitlines() or [""])[0][:300]
        raise RbgError(f"timm architecture {name!r} cannot be built with the given keyword "
                       f"arguments ({type(err).__name__}: {first})") from None
    if not isinstance(net, nn.Module):  # pragma: no cover - timm always returns one
        raise RbgError(f"timm.create_model({name!r}) did not return an nn.Module")
    return net


def _values(cfg: Any, key: str) -> list[float] | None:
    value = cfg.get(key) if isinstance(cfg, dict) else getattr(cfg, key, None)
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        return None
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if all(math.isfinite(v) for v in out) else None


def declared_statistics(net: nn.Module, channels: int
                        ) -> tuple[list[float], list[float]] | None:
    """The mean/std the network's ``pretrained_cfg`` declares, when it declares both with one
    value per input channel (or one value); else None (the dataset's are used)."""
    cfg = getattr(net, "pretrained_cfg", None)
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        to_dict = getattr(cfg, "to_dict", None)
        cfg = to_dict() if callable(to_dict) else vars(cfg)
    mean, std = _values(cfg, "mean"), _values(cfg, "std")
    if mean is None or std is None or any(s <= 0 for s in std):
        return None
    if len(mean) not in (1, channels) or len(std) not in (1, channels):
        return None
    return mean * (channels // len(mean)), std * (channels // len(std))
