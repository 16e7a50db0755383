"""Large Margin Discriminative loss (LMD): Nguyen et al., arXiv 2405.18499 v1/v2.

Cross-entropy plus three terms on the penultimate feature ``f = model.features(x)``
(docs/losses.md#lmd):

* compactness: features pulled into a ball of radius ``delta_var`` around their momentum
  class centre ``c_k``;
* margin: each batch class mean ``mu_k`` kept at signed distance ``delta_dist`` from every
  decision boundary ``k|j`` of the final linear layer;
* a small penalty on the centre norms, against trivial scale solutions.

This module also holds the pieces LMD-Noise (``noise.py``) shares: the momentum class-centre
memory and the three terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import RbgError
from ..lazy import F, LazyModuleBase, nn, torch
from ..settings import setting
from .base import GREY_SWEEP, LossOutput, LossPreset, TrainingLoss, register_loss

if TYPE_CHECKING:
    from ..models import TappedModel


class ClassCentreMemory(LazyModuleBase):  # an nn.Module once created (registry)
    """Momentum (EMA) class centres with the "partial momentum" rule of LMD (docs/losses.md#lmd).

    The centres and an ``initialised`` mask are buffers, so they are saved with the run and a
    resumed training continues them. The feature size is learnt on the first update (the
    buffer starts as ``(K, 0)``); loading a state dict adopts the stored shape.
    """

    def __init__(self, num_classes: int, momentum: float) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("centres", torch.zeros(num_classes, 0))
        self.register_buffer("initialised", torch.zeros(num_classes, dtype=torch.bool))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        stored = state_dict.get(prefix + "centres")
        if stored is not None and stored.shape != self.centres.shape:
            self.centres = self.centres.new_zeros(stored.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def update(
        self, feats: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fold one batch into the memory.

        Returns ``(classes, inverse, means, centres)``: the classes present (sorted), each
        sample's row in them, the batch means ``mu_k`` and the new centres
        ``c_k = (1 - gamma) mu_k + gamma sg(c_k^{t-1})`` (``mu_k`` on a class's first
        occurrence). Means and centres carry the gradient of ``feats``; the stored copy is
        detached.
        """
        dim = feats.shape[1]
        if self.centres.shape[1] != dim:
            if bool(self.initialised.any()):
                raise RbgError(f"class-centre memory holds {self.centres.shape[1]}-d centres "
                               f"but the model gives {dim}-d features")
            self.centres = feats.new_zeros(self.centres.shape[0], dim)
        classes, inverse, counts = torch.unique(labels, return_inverse=True,
                                                return_counts=True)
        sums = feats.new_zeros(len(classes), dim).index_add(0, inverse, feats)
        means = sums / counts[:, None].to(feats.dtype)
        previous = self.centres[classes].to(feats.dtype)
        seen = self.initialised[classes][:, None]
        g = self.momentum
        centres = torch.where(seen, (1 - g) * means + g * previous, means)
        with torch.no_grad():
            self.centres[classes] = centres.detach().to(self.centres.dtype)
            self.initialised[classes] = True
        return classes, inverse, means, centres


def compactness(feats: torch.Tensor, inverse: torch.Tensor, centres: torch.Tensor,
                delta_var: float) -> torch.Tensor:
    """L_compact: mean over present classes of the class-mean of
    ``[||f_i - c_k||_2 - delta_var]_+^2`` (docs/losses.md#lmd)."""
    dist = torch.linalg.vector_norm(feats - centres[inverse], dim=1)
    hinge = F.relu(dist - delta_var).square()
    n = len(centres)
    per_class = hinge.new_zeros(n).index_add(0, inverse, hinge)
    counts = hinge.new_zeros(n).index_add(0, inverse, torch.ones_like(hinge))
    return (per_class / counts).mean()


def signed_distances(points: torch.Tensor, classes: torch.Tensor, weight: torch.Tensor,
                     bias: torch.Tensor | None) -> torch.Tensor:
    """``d_kj = (z_k(p) - z_j(p)) / ||w_k - w_j||_2`` for each point ``p`` of class ``k``.

    Row ``i`` is point ``i`` (class ``classes[i]``), column ``j`` the other class; the entry
    ``j = k`` is ``+inf``. ``d_kj > 0`` iff the point lies on class k's side of boundary k|j.
    """
    logits = points @ weight.T
    if bias is not None:
        logits = logits + bias
    own = logits.gather(1, classes[:, None])
    same = classes[:, None] == torch.arange(weight.shape[0], device=classes.device)
    diff = weight[classes][:, None, :] - weight[None, :, :]
    norm = torch.linalg.vector_norm(diff, dim=2).masked_fill(same, 1.0)
    return ((own - logits) / norm.clamp_min(1e-12)).masked_fill(same, float("inf"))


def margin(distances: torch.Tensor, delta_dist: float) -> torch.Tensor:
    """L_margin: mean over rows of ``[delta_dist - min_j d_kj]_+``; zero iff every row's
    smallest distance reaches ``delta_dist``."""
    return F.relu(delta_dist - distances.min(dim=1).values).mean()


def linear_head(model: TappedModel) -> nn.Linear:
    head = model.head
    if not isinstance(head, nn.Linear):
        raise RbgError(f"margin losses need a linear final layer; {type(model).__name__} has "
                       f"{type(head).__name__}")
    return head


@dataclass(frozen=True)
class LMDOptions:
    """Defaults from the authors' code (docs/losses.md#lmd)."""

    delta_var: float = setting(0.5, "compactness radius around the class centre")
    delta_dist: float = setting(6.0, "margin: wanted distance of class means to the "
                                     "boundaries (authors' CIFAR-10 script: 6)")
    alpha: float = setting(1.0, "weight of the compactness term")
    beta: float = setting(1.0, "weight of the margin term")
    gamma_reg: float = setting(0.001, "weight of the centre-norm regulariser")
    lam: float = setting(1.0, "weight of the three terms against cross-entropy")
    momentum: float = setting(0.99, "momentum of the class-centre memory")

    def validate(self) -> None:
        for key in ("delta_var", "delta_dist", "alpha", "beta", "gamma_reg", "lam"):
            if getattr(self, key) < 0:
                raise RbgError(f"loss option {key} must be >= 0, got {getattr(self, key)}")
        if not 0 <= self.momentum < 1:
            raise RbgError(f"loss option momentum must be in [0, 1), got {self.momentum}")


@register_loss("lmd", "large margin discriminative loss: CE + compactness to momentum class "
               "centres + margin of batch class means (Nguyen et al., arXiv 2405.18499 v1/v2)")
class LargeMarginDiscriminative(TrainingLoss):
    """LMD (arXiv 2405.18499 v1/v2; docs/losses.md#lmd)::

        L = CE + lam * (alpha * L_compact + beta * L_margin + gamma_reg * L_reg)

    Partial momentum (Proposition 4.1): compactness and ``L_reg = mean_k ||c_k||`` use the
    momentum centres ``c_k``; the margin uses the batch means ``mu_k``, since a margin on
    ``c_k`` would pass only ``1 - momentum`` of its gradient to the network. Averages run over
    the classes present in the batch. Needs a model whose ``head`` is an ``nn.Linear``.
    """

    presets = {"grey": LossPreset({"lam": 0.3}, GREY_SWEEP)}

    Options = LMDOptions

    def __init__(self, options: LMDOptions, num_classes: int) -> None:
        super().__init__(options, num_classes)
        self.memory = ClassCentreMemory(num_classes, options.momentum)

    def discriminative(
        self, model: TappedModel, feats: torch.Tensor, labels: torch.Tensor,
        extra: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted LMD terms; ``extra`` features (same labels, e.g. noisy views) join the
        compactness term but not the centres or the margin."""
        o = self.options
        head = linear_head(model)
        classes, inverse, means, centres = self.memory.update(feats, labels)
        pulled, index = feats, inverse
        if extra is not None:
            pulled, index = torch.cat([feats, extra]), torch.cat([inverse, inverse])
        l_compact = compactness(pulled, index, centres, o.delta_var)
        l_margin = margin(signed_distances(means, classes, head.weight, head.bias),
                          o.delta_dist)
        l_reg = torch.linalg.vector_norm(centres, dim=1).mean()
        total = o.lam * (o.alpha * l_compact + o.beta * l_margin + o.gamma_reg * l_reg)
        parts = {k: float(v.detach()) for k, v in
                 (("compact", l_compact), ("margin", l_margin), ("reg", l_reg))}
        return total, parts

    def forward(
        self, model: TappedModel, images: torch.Tensor, labels: torch.Tensor
    ) -> LossOutput:
        feats = model.features(images)
        logits = model.head(feats)
        ce = F.cross_entropy(logits, labels)
        extra, parts = self.discriminative(model, feats, labels)
        return LossOutput(ce + extra, logits, {"ce": float(ce.detach()), **parts})
