"""LapNet's regulariser: cross-entropy plus the mean smoothness gap between post-ReLU taps.

Lassance, Gripon, Ortega, *Laplacian Networks: Bounding Indicator Function Smoothness for
Neural Networks Robustness*, arXiv 1805.10133, eqs. (5) and (9); docs/losses.md#laplacian::

    delta^l = | sigma^l - sigma^(l-1) |,   Delta = mean over the d - 1 consecutive gaps
    loss    = CE + gamma^m * Delta

``gamma^m * sigma = tr(S^T (gamma L)^m S)``: gamma scales the Laplacian. Two scales of sigma:

* ``normalize=none``: the paper's raw sigma. Its size grows like b^(m+1) (mean cosine)^m, so
  the paper's gamma = 0.01 (weight 1e-4), calibrated on CIFAR-10 / PreActResNet18, diverges on
  mnist5k / smallcnn (docs/losses.md#laplacian).
* ``normalize=batch`` (default): sigma / b^(m+1), i.e. the smoothness of the Laplacian of
  ``A / b`` averaged over the b nodes. It lies in [0, ~1] whatever the batch size; at b = 100
  and m = 2, gamma_batch = 1000 * gamma_raw (the paper's 0.01 is 10 here).

``gamma=None`` (default) resolves per normalisation and model: 0.01 with ``normalize=none``;
with ``normalize=batch``, the weight the model declares (``TappedModel.laplacian_gamma``): 10
(the paper's weight at b = 100) on the PreActResNet18 the paper calibrated it on, 1 on the
other models. Sweep on mnist5k / smallcnn, 5 epochs,
test accuracy for seeds 0/1 and Delta (m = 2, raw, on test batches): CE 97.2/98.0%, Delta 8.0e4;
gamma 0.3: 97.7/98.0%, 2.4e4; gamma 1: 97.3/97.9%, 690 (sigma equal across taps); gamma 2:
97.4% (seed 0), 1.4e3; gamma 3: 11.9% (collapsed). gamma 1 is the smallest value that
equalises sigma across depth, at no measurable cost; the cliff is seed-dependent (gamma 1.5
collapsed one seed of two at 3 epochs, docs/fidelity.md#laplacian).

Numerics: the defaults are exact float32 and the Gram form on every device, so the same
command gives the same numbers (to float32 rounding) on any machine. Faster choices are
explicit options, recorded in the run's ``config.json``:

* ``grad_dtype=bfloat16`` computes the Gram backward in bfloat16 (2.4e-3 relative gradient
  error measured, < 1e-2 tested in ``tests/test_laplacian.py``; on mnist5k, 3 seeds, test
  accuracy and Delta unchanged within seed noise, ``bench/RESULTS.md``); ``grad_dtype=auto``
  takes bfloat16 only where its products are native (GPUs of compute capability >= 8, CPUs with
  AVX512-BF16/AMX), so its numbers depend on the hardware. ``gram_dtype=bfloat16`` also rounds
  the forward (sigma to ~4e-3), fastest.
* ``form=lowrank`` computes the same sigma without the b x b graph, as ``A [S, 1]`` through thin
  products of the features (``graph.lowrank``): exact float32, cost linear in b, dense graph
  only. ``form=auto`` takes it where it was measured at least as fast as the Gram form on one
  AVX-512 CPU (``graph.lowrank.prefer_lowrank``): on CPUs, with at most 15 classes and m <= 2,
  from b = 128 against an exact Gram and from b = 256 against the bfloat16 backward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..device import has_fast_bf16_matmul
from ..errors import RbgError
from ..graph import is_dense_graph, label_smoothness_per_layer
from ..graph.lowrank import lowrank_label_smoothness_per_layer, prefer_lowrank
from ..lazy import F, torch
from ..settings import setting
from .base import (
    GREY_SWEEP,
    LossOutput,
    LossPreset,
    TrainingLoss,
    register_loss,
    require_choice,
)

if TYPE_CHECKING:
    from ..models import TappedModel

NORMALIZATIONS = ("batch", "none")
PAPER_GAMMA = 0.01
# Laplacian powers: L^m S on a batch of 100 grows like b^m and leaves float32's range near
# m = 19 (and gamma^m overflowed Python floats at m = 1000: OverflowError).
MAX_POWER = 16
# precision name -> torch dtype name (None: float32); torch_dtype() gives the dtype
GRAM_DTYPES = {"float32": None, "bfloat16": "bfloat16"}
GRAD_DTYPES = {"auto": None, **GRAM_DTYPES}


def torch_dtype(name: str) -> torch.dtype | None:
    """The torch dtype of precision ``name`` (``float32``: None, the exact default)."""
    dtype = GRAM_DTYPES[name]
    return None if dtype is None else getattr(torch, dtype)
GRAPH_FORMS = ("auto", "lowrank", "gram")


def parse_taps(spec: str, count: int) -> list[int]:
    """Tap indices from ``"all"`` or a comma list such as ``"0,4,-1"`` (negative from the end)."""
    if spec.strip().lower() == "all":
        return list(range(count))
    try:
        raw = [int(t) for t in spec.split(",") if t.strip()]
    except ValueError:
        raise RbgError(f"taps must be 'all' or comma-separated integers, got {spec!r}") from None
    out = []
    for t in raw:
        if not -count <= t < count:
            raise RbgError(f"tap {t} is out of range for a model with {count} ReLU taps")
        out.append(t % count)
    if len(out) < 2:
        raise RbgError(f"the regulariser needs at least 2 taps, got {spec!r}")
    return out


def smoothness_gap(sigmas: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """``Delta = (1/(d-1)) sum_l |sigma^l - sigma^(l-1)|`` over d >= 2 smoothness values."""
    if len(sigmas) < 2:
        raise RbgError("the smoothness gap needs at least 2 representations")
    stacked = sigmas if isinstance(sigmas, torch.Tensor) else torch.stack(list(sigmas))
    return (stacked[1:] - stacked[:-1]).abs().mean()


def resolve_gamma(gamma: float | None, normalize: str, model_gamma: float) -> float:
    """The Laplacian scale actually used: ``gamma`` if given, else the paper's 0.01 with
    ``normalize=none`` and the model's declared ``laplacian_gamma`` with ``normalize=batch``."""
    if gamma is not None:
        return gamma
    if normalize == "none":
        return PAPER_GAMMA
    return model_gamma


def resolve_grad_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """The Gram backward's dtype for ``grad_dtype=name`` on ``device`` (None: float32)."""
    if name == "auto":
        return torch.bfloat16 if has_fast_bf16_matmul(device) else None
    return torch_dtype(name)


def resolve_form(form: str, batch_size: int, num_classes: int, m: int, k: int | None,
                 gram_dtype: torch.dtype | None, grad_dtype: torch.dtype | None,
                 device_type: str) -> str:
    """``gram`` or ``lowrank`` for ``form``: ``auto`` takes the low-rank form where it was
    measured faster (``graph.lowrank.prefer_lowrank``), never with a bfloat16 forward."""
    if form != "auto":
        return form
    fast = gram_dtype is None and prefer_lowrank(
        batch_size, num_classes, m, k, grad_dtype == torch.bfloat16, device_type)
    return "lowrank" if fast else "gram"


def regulariser(
    representations: Sequence[torch.Tensor],
    labels: torch.Tensor,
    num_classes: int,
    *,
    m: int = 2,
    k: int | None = None,
    normalize: str = "batch",
    gram_dtype: torch.dtype | None = None,
    grad_dtype: torch.dtype | None = None,
    form: str = "gram",
) -> tuple[torch.Tensor, torch.Tensor]:
    """LapNet's Delta over ``representations`` (in depth order) and the per-tap sigmas (T).

    ``form``: ``lowrank`` (dense graph only, exact float32, ``graph.lowrank``), ``gram`` (any
    k; precisions ``gram_dtype`` / ``grad_dtype``) or ``auto``: the low-rank form where it
    was measured faster (``graph.lowrank.prefer_lowrank``), never with a bfloat16 forward."""
    b = labels.shape[0]
    scale = float(b) ** (m + 1) if normalize == "batch" else 1.0
    with torch.autocast(labels.device.type, enabled=False):
        form = resolve_form(form, b, num_classes, m, k, gram_dtype, grad_dtype,
                            labels.device.type)
        if form == "lowrank":
            if not is_dense_graph(k, b):
                raise RbgError("laplacian form=lowrank needs the dense graph (k none)")
            sigmas = lowrank_label_smoothness_per_layer(representations, labels, num_classes,
                                                        m=m)
        else:
            sigmas = label_smoothness_per_layer(representations, labels, num_classes, m=m,
                                                k=k, gram_dtype=gram_dtype,
                                                grad_dtype=grad_dtype)
        sigmas = sigmas / scale
        return smoothness_gap(sigmas), sigmas


@register_loss("laplacian", "LapNet: CE + gamma^m * mean |sigma^l - sigma^(l-1)| over post-ReLU "
               "taps (arXiv 1805.10133 eq. 9); scale-free sigma/b^(m+1) by default, "
               "normalize=none gamma=0.01 is the paper's raw form")
class LaplacianLoss(TrainingLoss):
    """Cross-entropy plus the smoothness-gap regulariser (docs/losses.md#laplacian)."""

    # γ 1.5 diverged in 1 of 3 seeds of the sweep; 1.25 is the strongest within the budget.
    presets = {"grey": LossPreset({"gamma": 1.25}, GREY_SWEEP)}

    @dataclass(frozen=True)
    class Options:
        """gamma: Laplacian scale, weight gamma^m (None: per normalisation, module docstring);
        m: Laplacian power; k: k-NN neighbours (None: full graph, k = b); taps: "all" or
        comma-separated ReLU-tap indices; normalize: "batch" (sigma / b^(m+1)) or "none";
        grad_dtype: precision of the Gram backward, "float32" (exact, default), "bfloat16" or
        "auto" (bfloat16 where native: hardware-dependent, module docstring); gram_dtype:
        precision of the Gram forward, "float32" (exact sigma and Delta) or "bfloat16"
        (fastest, sigma to ~4e-3); form: "gram" (default), "lowrank" (exact, dense graph
        only) or "auto" (by thresholds measured on one CPU; module docstring)."""

        gamma: float | None = setting(
            None, "Laplacian scale; weight gamma^m (none: 0.01 with normalize=none, else the "
                  "model's: 10 on preactresnet18, 1 on the others)")
        m: int = setting(2, "power of the Laplacian (LapNet: 2)")
        k: int | None = setting(
            None, "k-NN neighbours of the graph (none: the full graph, LapNet's k = b)")
        taps: str = setting("all", "ReLU taps regularised: all, or comma-separated tap indices")
        normalize: str = setting(
            "batch", "batch: sigma / b^(m+1) (scale-free); none: the paper's raw sigma")
        grad_dtype: str = setting(
            "float32", "precision of the Gram backward: float32, bfloat16 or auto")
        gram_dtype: str = setting(
            "float32", "precision of the Gram forward: float32 or bfloat16")
        form: str = setting("gram", "computation: gram, lowrank (dense graph only) or auto")

        def validate(self) -> None:
            if self.gamma is not None and self.gamma < 0:
                raise RbgError(f"laplacian gamma must be >= 0, got {self.gamma}")
            if not 1 <= self.m <= MAX_POWER:
                raise RbgError(f"laplacian m must be in 1..{MAX_POWER}, got {self.m}")
            if self.k is not None and self.k < 1:
                raise RbgError(f"laplacian k must be >= 1 or none, got {self.k}")
            require_choice("laplacian", "normalize", self.normalize, NORMALIZATIONS)
            require_choice("laplacian", "grad_dtype", self.grad_dtype, GRAD_DTYPES)
            require_choice("laplacian", "gram_dtype", self.gram_dtype, GRAM_DTYPES)
            require_choice("laplacian", "form", self.form, GRAPH_FORMS)
            if self.form == "lowrank" and self.k is not None:
                raise RbgError("laplacian form=lowrank needs the dense graph: set k to none")
            if self.form == "lowrank" and "bfloat16" in (self.gram_dtype, self.grad_dtype):
                raise RbgError("laplacian form=lowrank is exact float32; gram_dtype and "
                               "grad_dtype=bfloat16 apply to form=gram")
            if self.taps.strip().lower() != "all":
                parse_taps(self.taps, 10**6)

    def resolved(self, model: TappedModel) -> dict[str, Any]:
        o = self.options
        return {"gamma": resolve_gamma(o.gamma, o.normalize, model.laplacian_gamma)}

    def numerics(self, device: torch.device, batch_size: int) -> dict[str, str]:
        o = self.options
        grad = resolve_grad_dtype(o.grad_dtype, device)
        form = resolve_form(o.form, batch_size, self.num_classes, o.m, o.k,
                            torch_dtype(o.gram_dtype), grad, device.type)
        grad_name = "float32" if grad is None or form == "lowrank" else "bfloat16"
        return {"form": form, "gram_dtype": o.gram_dtype if form == "gram" else "float32",
                "grad_dtype": grad_name}

    def forward(
        self, model: TappedModel, images: torch.Tensor, labels: torch.Tensor
    ) -> LossOutput:
        from ..models import capture

        o = self.options
        all_taps = model.relu_taps
        index = parse_taps(o.taps, len(all_taps))
        modules = [all_taps[i] for i in index]
        with capture(modules) as outs:
            logits = model(images)
        if len(outs) != len(modules):
            raise RbgError(f"expected {len(modules)} tap outputs, got {len(outs)}")
        ce = F.cross_entropy(logits, labels)
        delta, _ = regulariser(outs, labels, self.num_classes, m=o.m, k=o.k,
                               normalize=o.normalize, gram_dtype=torch_dtype(o.gram_dtype),
                               grad_dtype=resolve_grad_dtype(o.grad_dtype, images.device),
                               form=o.form)
        weight = resolve_gamma(o.gamma, o.normalize, model.laplacian_gamma) ** o.m
        loss = ce + weight * delta
        return LossOutput(loss, logits, {"ce": float(ce.detach()), "delta": float(delta.detach())})
