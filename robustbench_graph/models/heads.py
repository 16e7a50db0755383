"""Classifier heads: the last layer of a model, ``logits = head(features)``.

A model is built with its head (:func:`~.base.create_model`, ``head=``), so that a run folder
names everything needed to rebuild its network (``config.json``'s ``model_head`` record,
docs/run-folder.md). Two heads:

* ``linear``: the architecture's own ``nn.Linear`` (features -> classes), unchanged;
* ``centroids``: a :class:`CentroidHead`, the nearest-class-centroid classifier of the graph
  smoothness loss (docs/losses.md#gsl): ``linear`` maps the features to d outputs and the
  logits are ``tau * cos(linear(h), mu_c)`` with mu_c the class centroids in output space
  (a buffer, filled by the loss during and after training). Options: ``out_dim`` (d; None
  keeps the architecture's Linear, d = classes) and ``tau`` (the logit scale).

The head's parameters keep their names (``head.weight``; ``head.linear.weight`` and
``head.centroids`` for centroids), so weights saved by earlier versions load unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import RbgError
from .catalogue import CENTROIDS, LINEAR

DEFAULT_TAU = 10.0  # the gsl loss's default logit scale (docs/losses.md#gsl)
# Each head's options and their defaults.
HEAD_OPTIONS: dict[str, dict[str, Any]] = {
    LINEAR: {},
    CENTROIDS: {"out_dim": None, "tau": DEFAULT_TAU},
}


class CentroidHead(nn.Module):
    """Classifier ``linear`` (features -> d outputs) plus class centroids in output space;
    ``forward`` gives the nearest-centroid logits ``tau * cos(linear(h), mu_c)``."""

    def __init__(self, linear: nn.Module, out_dim: int, num_classes: int, tau: float) -> None:
        super().__init__()
        self.linear = linear
        self.tau = tau
        self.register_buffer("centroids", torch.zeros(num_classes, out_dim))

    def logits(self, outputs: torch.Tensor) -> torch.Tensor:
        u = F.normalize(outputs, dim=1)
        return self.tau * u @ F.normalize(self.centroids, dim=1).T

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.logits(self.linear(h))


def head_options(head: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every option of ``head`` with its value (defaults filled in), checked; unknown heads
    and options raise ``RbgError`` naming the valid ones."""
    if head not in HEAD_OPTIONS:
        raise RbgError(f"unknown model head {head!r}; valid: {', '.join(HEAD_OPTIONS)}")
    given = dict(options or {})
    unknown = sorted(set(given) - set(HEAD_OPTIONS[head]))
    if unknown:
        valid = ", ".join(HEAD_OPTIONS[head]) or "none"
        raise RbgError(f"unknown option {unknown[0]!r} for model head {head!r}; valid: {valid}")
    values = HEAD_OPTIONS[head] | given
    if head == CENTROIDS:
        out_dim, tau = values["out_dim"], values["tau"]
        try:
            values = {"out_dim": None if out_dim is None else int(out_dim), "tau": float(tau)}
        except (TypeError, ValueError):
            raise RbgError(f"model head centroids needs an integer out_dim (or none) and a "
                           f"number tau, got {out_dim!r} and {tau!r}") from None
        if (values["out_dim"] is not None and values["out_dim"] <= 0) or values["tau"] <= 0:
            raise RbgError(f"model head centroids needs a positive out_dim and tau, got "
                           f"{values['out_dim']} and {values['tau']}")
    return values


def attach_head(model: nn.Module, head: str = LINEAR,
                options: Mapping[str, Any] | None = None) -> nn.Module:
    """Give ``model`` (with a ``head`` and ``num_classes``) the classifier ``head`` in place;
    returns it. ``linear`` leaves the model as built."""
    values = head_options(head, options)
    if head == LINEAR:
        return model
    linear = model.head
    if values["out_dim"] is not None:
        if not isinstance(linear, nn.Linear):
            raise RbgError("model head centroids with an out_dim needs a model whose head is "
                           "a Linear layer")
        linear = nn.Linear(linear.in_features, values["out_dim"])
    out_dim = values["out_dim"] or model.num_classes
    model.head = CentroidHead(linear, out_dim, model.num_classes, values["tau"])
    return model


__all__ = ["CENTROIDS", "HEAD_OPTIONS", "LINEAR", "CentroidHead", "attach_head",
           "head_options"]
