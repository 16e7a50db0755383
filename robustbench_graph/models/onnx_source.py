"""ONNX networks for ``rbg import --onnx FILE`` (docs/importing.md#onnx).

The file is read, checked with ``onnx.checker`` and converted to a torch module with
``onnx2torch`` (no code of the file runs: an ONNX file is a graph of standard operators).
The converted module is white-box where its operators are differentiable:
:func:`gradient_problem` says why it is not (a conversion that fails in backward, or gives
no, non-finite or all-zero input gradients); the model then refuses gradients with one line
(:func:`no_gradient_message`) while gradient-free perturbations run. onnx and onnx2torch
(with onnxruntime, for checks) are the optional extra ``pip install 'robustbench_graph[onnx]'``.
"""

from __future__ import annotations

import types
from pathlib import Path

from ..errors import RbgError
from ..lazy import nn, torch

EXTRA = "onnx"


def require_onnx() -> tuple[types.ModuleType, types.ModuleType]:
    """The ``onnx`` and ``onnx2torch`` packages, or one line saying how to install them."""
    try:
        import onnx
        import onnx2torch
    except ImportError as err:
        raise RbgError(f"--onnx needs the packages onnx and onnx2torch ({err.name or 'one'} "
                       "is not installed): pip install 'robustbench_graph[onnx]'") from None
    return onnx, onnx2torch


def versions() -> dict[str, str]:
    """The versions of onnx and onnx2torch (for the import record)."""
    from importlib.metadata import PackageNotFoundError, version

    onnx, _ = require_onnx()
    try:
        converter = version("onnx2torch")
    except PackageNotFoundError:
        converter = "unknown"
    return {"onnx": str(onnx.__version__), "onnx2torch": converter}


def _first_line(err: BaseException) -> str:
    text = (str(err).strip().splitlines() or [""])[0][:300]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def convert(data: bytes, path: Path) -> nn.Module:
    """The torch module of an ONNX file's bytes; a file that is not a valid ONNX model, or
    whose operators onnx2torch cannot convert, is one line."""
    onnx, onnx2torch = require_onnx()
    try:
        model = onnx.load_model_from_string(data)
        onnx.checker.check_model(model)
    except (KeyboardInterrupt, RbgError):
        raise
    except Exception as err:  # noqa: BLE001 - protobuf and the checker raise many kinds
        raise RbgError(f"{path} is not a valid ONNX model ({_first_line(err)})") from None
    try:
        net = onnx2torch.convert(model)
    except (KeyboardInterrupt, RbgError):
        raise
    except Exception as err:  # noqa: BLE001 - unsupported operators, opsets, shapes
        raise RbgError(f"{path} cannot be converted to torch by onnx2torch "
                       f"({_first_line(err)})") from None
    if not isinstance(net, nn.Module):  # pragma: no cover - onnx2torch returns a GraphModule
        raise RbgError(f"onnx2torch did not make a torch module of {path}")
    return net


def gradient_problem(net: nn.Module, x: torch.Tensor) -> str | None:
    """Why gradients of ``net``'s logits with respect to its input are unusable on the
    batch ``x`` (None when they are usable)."""
    x = x.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            out = net(x)
            if not out.requires_grad:
                return "its output does not depend differentiably on its input"
            (grad,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    except (KeyboardInterrupt, RbgError):
        raise
    except Exception as err:  # noqa: BLE001 - converted operators without a backward
        return f"backward fails ({_first_line(err)})"
    if grad is None:
        return "its output does not depend differentiably on its input"
    if not torch.isfinite(grad).all():
        return "its input gradients are not finite"
    if not grad.abs().sum() > 0:
        return "its input gradients are all zero (a step such as rounding or argmax)"
    return None


def no_gradient_message(reason: str) -> str:
    """The one line for a gradient asked of a model that is not white-box."""
    return (f"this ONNX model is not white-box ({reason}), so gradient-based perturbations "
            "(fgsm, pgd, deepfool, autoattack, ...) cannot run on it; gradient-free ones "
            "(gaussian, dropout, corruptions, ...) can")
