"""Graph Smoothness Loss (GSL): smoothness of the label signals on the output graph.

Bontonou et al., *Introducing Graph Smoothness Loss for Training Deep Learning Architectures*,
arXiv 1905.00301. Only the abstract is available, so this is a RECONSTRUCTION
(docs/losses.md#gsl), anchored on the same group's LapNet code: for the outputs y_i = f(x_i) of
a batch,

    W_ij = sim(y_i, y_j),  A = W * KNN_k(W),  L = D - A
    loss = tr(S^T L^m S) / |{(i, j): y_i != y_j}|   (m = 1: mean inter-class similarity)

with no cross-entropy. Defaults follow our measurements on mnist5k: clamped cosine
(signed cosine merges classes), full graph, m = 1, and gradient-norm clipping at 1.0 (without
it the start-up collapses into parallel outputs). The clipping is done inside the loss
(``clip``, on the loss's own gradient before it is returned), so a plain
``rbg train --loss gsl`` trains; ``-o clip=none`` leaves it to ``--grad-clip``.

Prediction ([R], docs/losses.md#gsl): the loss declares the ``centroids`` head, so the model is
built with a :class:`~robustbench_graph.models.heads.CentroidHead`, whose logits are
``tau * cos(f(x), mu_c)`` with mu_c the mean L2-normalised output of class c on the clean
training set (computed by :meth:`GraphSmoothnessLoss.finish`; a running mean stands in during
training). The logits are differentiable, so every attack applies. :func:`knn_accuracy` is
the k-NN (k = 10, cosine) cross-check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import RbgError
from ..graph import knn_sparsify, label_signals, signal_smoothness, similarity
from ..lazy import F, no_grad, torch
from ..models.catalogue import CENTROIDS
from ..settings import setting
from .base import GREY_SWEEP, LossOutput, LossPreset, TrainingLoss, register_loss, require_choice

if TYPE_CHECKING:
    from torch import nn

    from ..data import ImageData
    from ..models import TappedModel
    from ..models.heads import CentroidHead

GSL_SIMILARITIES = {"cosine_clamped": "cosine_clamped", "cosine_signed": "cosine",
                    "rbf_normalized": "rbf_normalized"}
CENTROID_MOMENTUM = 0.9


def gsl_smoothness(
    outputs: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    sim: str = "cosine_clamped",
    alpha: float = 1.0,
    k: int | None = None,
    m: int = 1,
    normalize: bool = True,
) -> torch.Tensor:
    """``tr(S^T L^m S)`` on the output graph, divided by the number of inter-class ordered
    pairs when ``normalize`` (0 for a one-class batch). ``sim`` is one of
    ``cosine_clamped``, ``cosine_signed``, ``rbf_normalized`` (``alpha``)."""
    if sim not in GSL_SIMILARITIES:
        raise RbgError(f"unknown GSL similarity {sim!r}; valid: {', '.join(GSL_SIMILARITIES)}")
    adj = knn_sparsify(similarity(outputs, GSL_SIMILARITIES[sim], alpha), k)
    value = signal_smoothness(adj, label_signals(labels, num_classes, adj.dtype), m)
    if not normalize:
        return value
    counts = torch.bincount(labels, minlength=num_classes).to(adj.dtype)
    pairs = float(labels.shape[0] ** 2 - (counts * counts).sum())
    return value / pairs if pairs > 0 else value * 0.0


def _clipped(loss: torch.Tensor, model: nn.Module, max_norm: float) -> torch.Tensor:
    """A tensor with ``loss``'s value whose gradient is ``loss``'s, its global norm clipped
    to ``max_norm`` (as ``clip_grad_norm_``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    used = [(p, g) for p, g in zip(params, grads, strict=True) if g is not None]
    if not used:
        return loss
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for _, g in used]))
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    surrogate = sum((p * (g * scale)).sum() for p, g in used)
    return loss.detach() + surrogate - surrogate.detach()


def _outputs(model: TappedModel, images: torch.Tensor) -> torch.Tensor:
    from ..models.heads import CentroidHead

    head = model.head
    if not isinstance(head, CentroidHead):
        raise RbgError("the gsl loss needs a model built with the centroids head "
                       "(CentroidHead)")
    return head.linear(model.features(images))


@register_loss("gsl", "Graph Smoothness Loss (RECONSTRUCTION of arXiv 1905.00301, "
               "docs/losses.md#gsl): mean inter-class output similarity, no CE; "
               "nearest-centroid head")
class GraphSmoothnessLoss(TrainingLoss):
    """Pure GSL on the network outputs, with a nearest-class-centroid head."""

    # No strength order: the clip with the best validation accuracy (88.5%, CE 96.9%).
    presets = {"grey": LossPreset({"clip": 2.0}, GREY_SWEEP)}

    head = CENTROIDS  # the model is built with a CentroidHead of these options:
    head_options = ("out_dim", "tau")

    @dataclass(frozen=True)
    class Options:
        """similarity: cosine_clamped | cosine_signed | rbf_normalized; alpha: RBF bandwidth;
        k: k-NN neighbours (None: full graph); m: Laplacian power; tau: logit scale of the
        centroid head (10, docs/losses.md#gsl); clip: gradient-norm clipping inside the loss (None:
        off); out_dim: output dimension d (None: number of classes)."""

        similarity: str = setting(
            "cosine_clamped", "output similarity: cosine_clamped, cosine_signed or rbf_normalized")
        alpha: float = setting(1.0, "RBF bandwidth (rbf_normalized only)")
        k: int | None = setting(None, "k-NN neighbours of the graph (none: the full graph)")
        m: int = setting(1, "power of the Laplacian")
        tau: float = setting(10.0, "logit scale of the nearest-centroid head (the logits "
                                   "attacks see; predictions do not change)")
        clip: float | None = setting(1.0, "gradient-norm clipping inside the loss (none: off; "
                                          "--grad-clip then applies)")
        out_dim: int | None = setting(None, "output dimension (none: the number of classes)")

        def validate(self) -> None:
            require_choice("gsl", "similarity", self.similarity, GSL_SIMILARITIES)
            for name in ("alpha", "tau", "clip", "k", "m", "out_dim"):
                value = getattr(self, name)
                if value is not None and value <= 0:
                    raise RbgError(f"gsl {name} must be positive, got {value}")

    def forward(
        self, model: TappedModel, images: torch.Tensor, labels: torch.Tensor
    ) -> LossOutput:
        o = self.options
        y = _outputs(model, images)
        loss = gsl_smoothness(y, labels, self.num_classes, sim=o.similarity, alpha=o.alpha,
                              k=o.k, m=o.m)
        with torch.no_grad():
            logits = model.head.logits(y.detach())
            if model.training:
                self._update_centroids(model.head, y.detach(), labels)
        value = float(loss.detach())
        if o.clip is not None and torch.is_grad_enabled() and loss.requires_grad:
            loss = _clipped(loss, model, o.clip)
        return LossOutput(loss, logits, {"gsl": value})

    def _update_centroids(self, head: CentroidHead, y: torch.Tensor, labels: torch.Tensor) -> None:
        """Running class means of the normalised outputs, so training-time accuracy means
        something; :meth:`finish` replaces them by exact training-set means."""
        means, present = class_means(y, labels, self.num_classes)
        old = head.centroids
        fresh = present & (old.norm(dim=1) == 0)
        mixed = CENTROID_MOMENTUM * old + (1 - CENTROID_MOMENTUM) * means
        old.copy_(torch.where(fresh[:, None], means, torch.where(present[:, None], mixed, old)))

    def finish(self, model: TappedModel, images: torch.Tensor, labels: torch.Tensor) -> None:
        outputs = torch.cat([_outputs(model, images[i:i + 1000])
                             for i in range(0, len(images), 1000)])
        means, _ = class_means(outputs, labels, self.num_classes)
        model.head.centroids.copy_(means)

    def final_metrics(self, model: TappedModel, train: ImageData, test: ImageData,
                      device: torch.device) -> dict[str, float]:
        """The k-NN (k = 10, cosine) clean test accuracy, a cross-check of the centroid head
        (docs/losses.md#gsl)."""
        return {"knn_accuracy": knn_accuracy(model, train, test, device=device)}


def class_means(outputs: torch.Tensor, labels: torch.Tensor, num_classes: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class mean of the L2-normalised outputs (zero for absent classes) and presence."""
    u = F.normalize(outputs, dim=1)
    sums = torch.zeros(num_classes, u.shape[1], dtype=u.dtype, device=u.device)
    sums.index_add_(0, labels, u)
    counts = torch.bincount(labels, minlength=num_classes).to(u.dtype)
    return sums / counts.clamp_min(1)[:, None], counts > 0


@no_grad
def output_embeddings(model: TappedModel, data: ImageData, batch_size: int = 1000,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """The GSL outputs ``f(x)`` (before the centroid head) of every image, on the CPU."""
    model.eval()
    return torch.cat([_outputs(model, data.float(slice(i, i + batch_size)).to(device)).cpu()
                      for i in range(0, len(data), batch_size)])


@no_grad
def knn_accuracy(model: TappedModel, train: ImageData, test: ImageData, *, k: int = 10,
                 batch_size: int = 1000, device: torch.device | str = "cpu") -> float:
    """Clean test accuracy of the k-NN rule (cosine, majority vote, ties to the larger
    summed similarity) on the outputs of the training set (docs/losses.md#gsl)."""
    ref = F.normalize(output_embeddings(model, train, batch_size, device), dim=1)
    qry = F.normalize(output_embeddings(model, test, batch_size, device), dim=1)
    num_classes = int(train.labels.max()) + 1
    correct = 0
    for i in range(0, len(qry), batch_size):
        sims, idx = (qry[i:i + batch_size] @ ref.T).topk(min(k, len(ref)), dim=1)
        votes = F.one_hot(train.labels[idx], num_classes).to(sims.dtype)
        score = votes.sum(1) + 1e-3 * (votes * sims[..., None]).sum(1)
        correct += int((score.argmax(1) == test.labels[i:i + batch_size]).sum())
    return correct / max(len(qry), 1)


__all__ = ["GraphSmoothnessLoss", "class_means",
           "gsl_smoothness", "knn_accuracy", "output_embeddings"]
