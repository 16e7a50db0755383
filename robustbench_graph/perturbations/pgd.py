"""Projected gradient descent (Madry et al., ICLR 2018; LapNet's code, docs/perturbations.md#pgd).

Untargeted, on [0, 1] images, the cross-entropy summed over the batch ascended from x0 (or a
uniform random point of the ball): each of ``steps`` iterations takes the input gradient g,
steps by ``step_size`` along sign(g) (L-inf) or g / ||g||_2 (L2, the norm floored at 1e-12),
projects onto the eps-ball around x0 (L-inf: clamp of the difference; L2: rescaling to at most
eps) and clips to [0, 1], as foolbox 3's ``LinfPGD`` / ``L2PGD``. Natively batched: each
iteration makes one forward and one input-gradient backward pass over the images not yet
fooled. With ``early_stop`` (the default, like foolbox 1.6.1's ``return_early`` that LapNet
used) an image is kept at its first adversarial iterate and no longer stepped; without it
every image takes every step and the last iterate is classified (foolbox 3's semantics).
``restarts`` > 1 attacks again, from a fresh random start, the images that survived: the
result per image is the worst case over restarts. The metric is the accuracy under attack
per eps (LapNet's: correctly classified *and* not fooled).

Defaults: LapNet's L-inf eps = 0.01, 20 steps of 0.002, no random start on colour images; on
grey (MNIST-like) images, where 0.01 changes nothing, eps = 0.05, 0.1, 0.15, 0.2, 0.3
([R]; 0.3 is Madry et al.'s MNIST budget; docs/perturbations.md#pgd). ``step_size`` left
unset is eps / 5, which is LapNet's 0.002 at 0.01. With ``norm=l2`` give ``eps`` in L2 units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..lazy import F, torch
from ..settings import setting
from .checks import require
from .context import Draw
from .family import Perturbation, register_perturbation
from .gradients import fast_batchnorm_backward, input_gradient
from .metrics import Strength

NORMS = ("linf", "l2")
_NORM_FLOOR = 1e-12  # foolbox 3's floor on gradient and perturbation norms


def _per_image(t: torch.Tensor) -> torch.Tensor:
    """Per-image L2 norms shaped to broadcast over an image batch."""
    return t.flatten(1).norm(dim=1).clamp_min(_NORM_FLOOR).view(-1, *([1] * (t.ndim - 1)))


def random_start(x0: torch.Tensor, norm: str, eps: float, gen: torch.Generator
                 ) -> torch.Tensor:
    """A uniform point of the eps-ball around ``x0`` (L2: uniform in the ball's volume)."""
    if norm == "linf":
        noise = torch.rand(x0.shape, generator=gen, device=x0.device) * 2 - 1
        return (x0 + eps * noise).clamp(0.0, 1.0)
    direction = torch.randn(x0.shape, generator=gen, device=x0.device)
    dim = x0[0].numel()
    radius = torch.rand((len(x0),), generator=gen, device=x0.device) ** (1.0 / dim)
    delta = direction / _per_image(direction) * radius.view(-1, *([1] * (x0.ndim - 1)))
    return (x0 + eps * delta).clamp(0.0, 1.0)


def pgd(model: Any, x0: torch.Tensor, y: torch.Tensor, *, norm: str, eps: float,
        step_size: float, steps: int, start: torch.Tensor | None = None,
        early_stop: bool = True) -> torch.Tensor:
    """PGD adversarials of ``x0`` (see the module docstring); ``start`` defaults to ``x0``.
    Input gradients only, batch norms backpropagated by :mod:`.gradients`' exact multiply.
    (The one-channel convolution shortcut DeepFool takes is not used: for PGD's one backward
    per step it measured slower on an AVX-512 Xeon, 158 against 115 ms per 200 mnist images.)"""
    x = (x0 if start is None else start).detach().clone()
    n = len(x0)
    active = torch.arange(n, device=x0.device)
    with fast_batchnorm_backward(model):
        for _ in range(steps):
            if len(active) == 0:
                break
            # While every image still steps (always with early_stop=False), the whole batch
            # is used as it is: no gather of x, y and x0 and no scatter back.
            whole = len(active) == n
            xa, ya = (x, y) if whole else (x[active], y[active])
            logits, grad = input_gradient(
                model, xa, lambda out, t=ya: F.cross_entropy(out, t, reduction="sum"))
            if early_stop:
                keep = logits.argmax(1) == ya
                if not bool(keep.all()):
                    active, xa, grad = active[keep], xa[keep], grad[keep]
                    whole = False
            origin = x0 if whole else x0[active]
            if norm == "linf":
                xa = origin + (xa + step_size * grad.sign() - origin).clamp(-eps, eps)
            else:
                delta = xa + step_size * grad / _per_image(grad) - origin
                xa = origin + delta * (eps / _per_image(delta)).clamp(max=1.0)
            if whole:
                x = xa.clamp_(0.0, 1.0)
            else:
                x[active] = xa.clamp(0.0, 1.0)
    return x


@dataclass(frozen=True)
class PgdSettings:
    norm: str = setting("linf", "threat model: linf or l2")
    eps: tuple[float, ...] = setting((0.01,), "budgets in [0, 1] pixel units, one cell each "
                                              "(LapNet: L-inf 0.01)")
    step_size: float | None = setting(None, "step size (none: eps / 5, LapNet's 0.002 at "
                                            "0.01)")
    steps: int = setting(20, "iterations (LapNet: 20)")
    random_start: bool = setting(False, "start at a uniform random point of the ball")
    restarts: int = setting(1, "attacks per image, each from a random start when "
                               "random_start; the worst case counts")
    early_stop: bool = setting(True, "keep an image at its first adversarial iterate "
                                     "(foolbox 1.6.1); false: every image takes every step")

    def validate(self) -> None:
        require(self.norm in NORMS, f"unknown PGD norm {self.norm!r}; valid: linf, l2")
        require(bool(self.eps), "pgd needs at least one eps")
        top = 1.0 if self.norm == "linf" else 1e6
        for eps in self.eps:
            require(0 < eps <= top, f"PGD eps {eps:g} is out of range (0, {top:g}]")
        require(self.step_size is None or self.step_size > 0,
                f"PGD step_size must be positive, got {self.step_size}")
        require(0 < self.steps <= 100_000, f"PGD steps must be in 1..100000, got {self.steps}")
        require(0 < self.restarts <= 1000, f"PGD restarts must be in 1..1000, got "
                f"{self.restarts}")


@register_perturbation("pgd", "projected gradient descent, L-inf (default) or L2; LapNet's "
                       "code: eps 0.01, 20 steps of 0.002")
class Pgd(Perturbation):
    Settings = PgdSettings
    # One-channel images: the grid goes on until CE breaks (measured, CE, smallcnn, 5 epochs,
    # seeds 0/1, L-inf: eps 0.1 67.9/79.2%, 0.15 25.7/46.2%, 0.3 0/0%; 0.3 is the MNIST
    # literature's budget; docs/perturbations.md#pgd).
    presets = {"grey": {"eps": (0.05, 0.1, 0.15, 0.2, 0.3)}}
    sweep = "eps"
    title = "PGD"
    strengths = {"eps": Strength("ε")}
    headline_setting = {"grey": 0.1, "colour": 0.01}
    order = 80

    def passes(self, images: int) -> tuple[int, int]:
        """Per cell and restart, ``steps`` gradient steps (a forward and a backward each), then
        the classification of the result."""
        runs = images * self.cell_count() * self.settings.restarts
        return runs * (self.settings.steps + 1), runs * self.settings.steps

    def perturb(self, u: torch.Tensor, y: torch.Tensor, draw: Draw, forward: Any
                ) -> torch.Tensor:
        s = self.settings
        eps = draw.cell.param_value
        step = s.step_size if s.step_size is not None else eps / 5
        adv = u.detach().clone()
        todo = torch.arange(len(u), device=u.device)
        for _ in range(s.restarts):
            x0 = u[todo]
            start = random_start(x0, s.norm, eps, draw.generator) if s.random_start else None
            adv[todo] = pgd(forward, x0, y[todo], norm=s.norm, eps=eps, step_size=step,
                            steps=s.steps, start=start, early_stop=s.early_stop)
            if len(todo) == 0 or s.restarts == 1:
                break
            with torch.inference_mode():
                survived = forward(adv[todo]).argmax(1) == y[todo]
            todo = todo[survived]
            if len(todo) == 0:
                break
        return adv
