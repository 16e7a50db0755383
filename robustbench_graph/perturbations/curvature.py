"""Input-space curvature of the loss (the noise-injection paper, Nguyen et al., arXiv
2405.18499 v3, its code's ``per_image_curvature_with_loss``; docs/perturbations.md#curvature).

Per test image, in the normalised input space, with ℓ = CE(f(u), y):

    κ(u) = (1/K) Σ_k ‖(∇ℓ(u + h g_k) − ∇ℓ(u)) / h‖²,   g_k ~ N(0, I),  h = 1e-2, K = 20,

a finite-difference estimate of E‖H g‖² = tr(H²) = ‖H‖_F², the sum of the squared eigenvalues
of the input Hessian H of the loss. Beside it, the same probes through exact Hessian-vector
products (forward-over-reverse, ``torch.func.jvp`` of ``torch.func.grad``), and optionally
the eigenvalue of H of largest magnitude by power iteration on those products.

For a ReLU network the exact Hessian holds the curvature of the softmax only (ReLU has no
second derivative), while the finite difference also sees the gradient jump at every ReLU
and max-pool switch the step crosses; the two agree where the step crosses few switches
(docs/perturbations.md#curvature gives the measured agreement).

The paper's analysis: each image is also classified under ``noise_draws`` noisy copies (the
noise it trained with, in [0, 1] space, clipped); images are grouped by how many they survive
and the Pearson r between that count and the group-mean κ is reported (expected negative:
flatter images survive more noise). Per-image values go to a side file
(:mod:`robustbench_graph.rundir.per_image`), the run-level medians and means to ``results.csv``.

Every image draws its probes and noise from its own seed (run, cell, test index), so the
values do not depend on the batch size or on which images are evaluated with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config import stable_seed
from ..lazy import F, LazyModule, torch
from ..settings import setting
from .cell import Cell
from .checks import require
from .context import EvalContext, Measurement
from .family import Perturbation, register_perturbation
from .metrics import Metric, conventional_median
from .report_extras import CellFilter, GroupedLines, PerImageFigure

pd = LazyModule("pandas")  # imported on first use (rbg list, status, report need none)

LossFn = Callable[["torch.Tensor"], "torch.Tensor"]  # a batch -> its per-image losses
# The backwards an exact HVP costs, counting its forward as one: measured 2.6-2.7x an input
# gradient (a forward and a backward, of about equal cost) on a trained mnist5k smallcnn,
# 7.2-7.6 against 2.7-2.9 ms per image (100 images, one thread): 1 + 4 backwards.
HVP_BACKWARDS = 4


def input_gradients(loss: LossFn, u: torch.Tensor) -> torch.Tensor:
    """Per-image ``∇_u ℓ(u)`` of a batch (the gradient of the summed per-image losses)."""
    ua = u.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(loss(ua).sum(), ua)
    return grad


def hessian_vector_products(loss: LossFn, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Per-image ``H(u_i) v_i``, exact: the input gradient of ``∇ℓ(u) · v`` (double
    backward; the summed loss is separable over images, so its Hessian is block-diagonal).
    ``torch.func.jvp`` of ``torch.func.grad`` gives the same values (tested) but measured
    1.3x (smallcnn-smooth) to 8x (smallcnn) slower on CPU (``bench/curvature.py``)."""
    ua = u.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(loss(ua).sum(), ua, create_graph=True)
        (hv,) = torch.autograd.grad((grad * v).sum(), ua)
    return hv


def _sq_norms(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).double().pow(2).sum(1)


def kappa_finite_difference(loss: LossFn, u: torch.Tensor, probes: torch.Tensor,
                            h: float) -> torch.Tensor:
    """(1/K) Σ_k ‖(∇ℓ(u + h g_k) − ∇ℓ(u)) / h‖² per image; ``probes``: (K, *u.shape)."""
    g0 = input_gradients(loss, u)
    total = torch.zeros(len(u), dtype=torch.float64, device=u.device)
    for g in probes:
        total += _sq_norms((input_gradients(loss, u + h * g) - g0) / h)
    return total / len(probes)


def kappa_exact(loss: LossFn, u: torch.Tensor, probes: torch.Tensor) -> torch.Tensor:
    """(1/K) Σ_k ‖H g_k‖² per image, by exact Hessian-vector products."""
    total = torch.zeros(len(u), dtype=torch.float64, device=u.device)
    for g in probes:
        total += _sq_norms(hessian_vector_products(loss, u, g))
    return total / len(probes)


def top_eigenvalue(loss: LossFn, u: torch.Tensor, start: torch.Tensor,
                   iterations: int) -> torch.Tensor:
    """The eigenvalue of largest magnitude of each image's input Hessian (signed), by
    ``iterations`` steps of power iteration from ``start``; its Rayleigh quotient."""
    v = start / start.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *[1] * (u.ndim - 1))
    value = torch.zeros(len(u), dtype=torch.float64, device=u.device)
    for _ in range(iterations):
        hv = hessian_vector_products(loss, u, v)
        value = (v * hv).flatten(1).double().sum(1)
        norm = hv.flatten(1).norm(dim=1)
        if bool((norm == 0).all()):
            break
        v = torch.where(norm.view(-1, *[1] * (u.ndim - 1)) > 0,
                        hv / norm.clamp_min(1e-30).view(-1, *[1] * (u.ndim - 1)), v)
    return value


def group_correlation(survived: np.ndarray, kappa: np.ndarray) -> tuple[float, pd.DataFrame]:
    """The paper's analysis: images grouped by the number of noisy draws they survived; the
    Pearson r between that count and the group-mean κ (NaN with fewer than 3 groups, where it
    says nothing), and the groups (``survived``, ``kappa``: group mean, ``images``)."""
    table = pd.DataFrame({"survived": survived, "kappa": kappa})
    groups = (table.groupby("survived", sort=True)["kappa"].agg(["mean", "size"])
              .reset_index().rename(columns={"mean": "kappa", "size": "images"}))
    if len(groups) < 3 or groups["kappa"].nunique() < 2:
        return float("nan"), groups
    r = np.corrcoef(groups["survived"].to_numpy(float), groups["kappa"].to_numpy(float))[0, 1]
    return float(r), groups


@dataclass(frozen=True)
class CurvatureSettings:
    h: float = setting(1e-2, "finite-difference step in the normalised input space "
                             "(the paper: 1e-2)")
    probes: int = setting(20, "Gaussian probe directions per image, K (the paper: 20)")
    exact: bool = setting(True, "also the exact Hessian-vector-product value with the same "
                                "probes")
    top_eigenvalue: bool = setting(False, "also the top Hessian eigenvalue by power iteration")
    power_iterations: int = setting(20, "power-iteration steps of the top eigenvalue")
    noise: str = setting("gaussian", "the noise of the survival count: gaussian (std) or "
                                     "uniform (U(-level, level)), in [0, 1] space, clipped")
    noise_level: float = setting(0.06, "its std or amplitude (the paper: 0.06, its training "
                                       "noise)")
    noise_draws: int = setting(10, "noisy copies per image whose survival is counted (the "
                                   "paper: 10)")

    def validate(self) -> None:
        # under 1e-5 the float32 step u + h g rounds away (at 1e-4 the gap to the exact
        # value is already 17% on a smooth network, bench/curvature.py)
        require(1e-5 <= self.h <= 1, f"curvature.h must be in [1e-5, 1], got {self.h:g}")
        require(0 < self.probes <= 10_000, f"curvature.probes must be in 1..10000, got "
                                           f"{self.probes}")
        require(0 < self.power_iterations <= 10_000, "curvature.power_iterations must be in "
                                                     f"1..10000, got {self.power_iterations}")
        require(self.noise in ("gaussian", "uniform"),
                f"curvature.noise must be gaussian or uniform, got {self.noise!r}")
        require(0 <= self.noise_level <= 1, "curvature.noise_level must be in [0, 1], got "
                                            f"{self.noise_level:g}")
        require(0 <= self.noise_draws <= 1000, "curvature.noise_draws must be in 0..1000, got "
                                               f"{self.noise_draws}")


def _generator(ctx: EvalContext, cell: Cell, image: int, use: str) -> torch.Generator:
    """The generator of one use (probes, power, noise) for one test image of a cell."""
    gen = torch.Generator(device=ctx.device)
    gen.manual_seed(stable_seed(ctx.seed(cell, image), use))
    return gen


def _lower(name: str, what: str) -> Metric:
    return Metric(name, "lower", what)


@register_perturbation("curvature", "input-space curvature of the loss, kappa = ||H||_F^2 by "
                       "finite differences and exact HVPs, and its correlation with noise "
                       "survival (the noise paper)")
class Curvature(Perturbation):
    Settings = CurvatureSettings
    metrics = (
        _lower("kappa_median", "median over images of the finite-difference kappa"),
        _lower("kappa_mean", "mean over images of the finite-difference kappa"),
        _lower("kappa_exact_median", "median over images of kappa by exact HVPs"),
        _lower("kappa_exact_mean", "mean over images of kappa by exact HVPs"),
        Metric("fd_error_median", "none", "median over images of |kappa_fd - kappa_exact| / "
                                          "kappa_exact"),
        _lower("eig_top_median", "median over images of |top Hessian eigenvalue|"),
        Metric("noise_accuracy", "higher", "fraction of the noisy copies classified correctly",
               percent=True),
        Metric("pearson_r", "none", "Pearson r between the number of noisy copies survived "
                                    "and the group-mean kappa (expected negative; absent "
                                    "with fewer than 3 groups)"),
    )
    headline = "kappa_median"
    # The noise paper's figure: per network, the mean κ of the images grouped by how many
    # noisy copies they survived, against that count, with the Pearson r in the legend.
    report_extras = (
        PerImageFigure(
            "curvature-survival", "Input curvature", "input curvature against noise survival",
            "mean input curvature of the images grouped by the noisy copies they survive, and "
            "the Pearson r per network",
            GroupedLines("survived", "kappa", group_correlation, "r",
                         "noisy copies classified correctly", "mean κ of the group"),
            CellFilter(metric="kappa_median")),
    )
    space = "normalized"
    order = 55
    title = "Input curvature"
    short_title = "curvature"
    # [R] one-channel images: 0.06 leaves almost every mnist5k image surviving every draw
    # (one group, no correlation); 0.5 spreads the counts (docs/perturbations.md#curvature).
    presets = {"grey": {"noise_level": 0.5}}

    def passes(self, images: int) -> tuple[int, int]:
        """Per image: the gradient at u and at u + h g per probe (a forward and a backward
        each), an exact HVP per probe and power step and ``noise_draws`` classifications.
        An HVP (a backward that builds a graph, then the backward of that graph) counts as a
        forward and :data:`HVP_BACKWARDS` backwards."""
        s = self.settings
        hvps = s.probes * s.exact + s.power_iterations * s.top_eigenvalue
        return (images * (1 + s.probes + hvps + s.noise_draws),
                images * (1 + s.probes + HVP_BACKWARDS * hvps))

    def _noise(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        s = self.settings
        if s.noise == "gaussian":
            return s.noise_level * torch.randn(x.shape, generator=gen, device=x.device)
        return s.noise_level * (torch.rand(x.shape, generator=gen, device=x.device) * 2 - 1)

    def evaluate(self, cell: Cell, ctx: EvalContext) -> list[Measurement]:
        s, model = self.settings, ctx.model
        n = len(ctx.data)
        columns: dict[str, list[torch.Tensor]] = {"kappa": [], "survived": []}
        if s.exact:
            columns["kappa_exact"] = []
        if s.top_eigenvalue:
            columns["eig_top"] = []
        batches = ctx.n_batches()
        for b, (rows, x, y) in enumerate(ctx.indexed_batches()):
            index = [int(i) for i in ctx.test_index(rows)]
            # One stream per image and use: the survival noise does not change with the
            # probes or the power iteration.
            gens = [_generator(ctx, cell, i, "probes") for i in index]
            u = model.normalize(x)
            probes = torch.stack([torch.randn((s.probes, *u.shape[1:]), generator=g,
                                              device=ctx.device) for g in gens], dim=1)

            def loss(v: torch.Tensor, y: torch.Tensor = y) -> torch.Tensor:
                return F.cross_entropy(model.forward_normalized(v), y, reduction="none")

            columns["kappa"].append(kappa_finite_difference(loss, u, probes, s.h))
            if s.exact:
                columns["kappa_exact"].append(kappa_exact(loss, u, probes))
            if s.top_eigenvalue:
                start_v = torch.stack([torch.randn(u.shape[1:], generator=g, device=ctx.device)
                                       for g in (_generator(ctx, cell, i, "power")
                                                 for i in index)])
                columns["eig_top"].append(top_eigenvalue(loss, u, start_v,
                                                         s.power_iterations))
            survived = torch.zeros(len(x), dtype=torch.long, device=ctx.device)
            gens = [_generator(ctx, cell, i, "noise") for i in index]
            with torch.inference_mode():
                for _ in range(s.noise_draws):
                    noise = torch.stack([self._noise(x[0], g) for g in gens])
                    logits = model((x + noise).clamp(0.0, 1.0))
                    survived += (ctx.predictions(logits, self.name) == y).long()
            columns["survived"].append(survived)
            ctx.advance(b + 1, batches)
        values = {k: torch.cat(v).cpu() for k, v in columns.items()}
        index = ctx.test_index(torch.arange(n))
        table = pd.DataFrame({"image": index.numpy(), "label": ctx.labels.cpu().numpy(),
                              **{k: v.numpy() for k, v in values.items()}})
        ctx.keep_per_image(cell, table)
        kappa = values["kappa"]
        out = [Measurement(0, "kappa_median", conventional_median(kappa), n),
               Measurement(0, "kappa_mean", float(kappa.mean()), n)]
        if s.exact:
            exact = values["kappa_exact"]
            # NaN where the exact value is 0 (a saturated softmax): no relative gap
            gap = torch.where(exact > 0, (kappa - exact).abs() / exact, math.nan)
            gap = gap[gap.isfinite()]
            out += [Measurement(0, "kappa_exact_median", conventional_median(exact), n),
                    Measurement(0, "kappa_exact_mean", float(exact.mean()), n)]
            if len(gap):
                out.append(Measurement(0, "fd_error_median", conventional_median(gap),
                                       len(gap)))
        if s.top_eigenvalue:
            out.append(Measurement(0, "eig_top_median",
                                   conventional_median(values["eig_top"].abs()), n))
        if s.noise_draws:
            survived = values["survived"].numpy()
            r, _groups = group_correlation(survived, kappa.numpy())
            out.append(Measurement(0, "noise_accuracy", float(survived.mean()) / s.noise_draws,
                                   n * s.noise_draws))
            if r == r:  # undefined (NaN) with fewer than 3 survival groups: no row
                out.append(Measurement(0, "pearson_r", r, n))
        return out
