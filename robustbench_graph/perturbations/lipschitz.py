"""The local-Lipschitz "r_alpha" curve (LapNet's later revision, its code's ``r_alpha.py``;
docs/perturbations.md#lipschitz).

On the first ``images`` images of the run's training split, for each L2 radius r:

    alpha_raw(r) = max over ``draws`` draws, max over images i, of
                   ||softmax(f(clip(x_i + n))) - softmax(f(x_i))||_2 / ||clip(x_i + n) - x_i||_2

with n ~ U(-1, 1)^D rescaled to ||n||_2 = r, in [0, 1] pixel space (f: the model on [0, 1]
inputs). A pair whose clipped displacement is 0 (clipping undid all of n) is skipped. The curve
is made monotone by a running max over the radii in increasing order: ``alpha(r)`` is the
largest ``alpha_raw`` at any radius of the grid up to r. Noise is drawn fresh per image and
draw (LapNet's code draws it in the batch's shape); ``shared`` draws one vector per draw for
every image (the formula's literal reading).

One cell per radius. The curve depends on the whole grid (the running max), so the grid is part
of every cell's settings; it is computed once, on the first cell that needs it, and kept on the
family for the other cells. Each (radius, draw, block of 1,000 images) has its own generator,
seeded by the run name, the radius and the draw (not by the cell being measured or the batch
size), so a resumed attack, or one whose other cells are cached, gives the same numbers.
Without a training split (a context built outside ``rbg attack``) the context's images are used.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import ImageSubset, stable_seed
from ..lazy import inference_mode, torch
from ..rundir.results import as_saved
from ..settings import setting
from .cell import Cell, settings_fingerprint
from .checks import require
from .context import EvalContext, Measurement
from .family import Perturbation, register_perturbation
from .metrics import Metric, Strength

# LapNet's grid: r = 1.75 a / 30, a = 1..30, kept to the 10 digits results.csv keeps.
DEFAULT_RADII = tuple(as_saved(1.75 * a / 30) for a in range(1, 31))
BLOCK = 1000  # images per noise generator (noise does not depend on the batch size)


def scaled_noise(count: int, shape: tuple[int, ...], radius: float, gen: torch.Generator,
                 device: torch.device) -> torch.Tensor:
    """``count`` draws of U(-1, 1)^shape, each rescaled to L2 norm ``radius``."""
    noise = torch.rand((count, *shape), generator=gen, device=device) * 2 - 1
    norms = noise.flatten(1).norm(dim=1).clamp_min(1e-12)
    return noise * (radius / norms).view(-1, *([1] * len(shape)))


@inference_mode
def ratios(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
           clean: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Per image ||softmax(f(clip(x + n))) - clean||_2 / ||clip(x + n) - x||_2, NaN where
    the clipped displacement is 0 (``clean``: the softmax of ``f(x)``)."""
    moved = (x + noise).clamp(0.0, 1.0)
    distance = (moved - x).flatten(1).norm(dim=1)
    change = (torch.softmax(forward(moved).float(), dim=1) - clean).norm(dim=1)
    return torch.where(distance > 0, change / distance, torch.full_like(change, math.nan))


@dataclass(frozen=True)
class Point:
    """One radius of the curve: its own max, the running max, pairs counted and skipped."""

    raw: float
    alpha: float
    counted: int
    skipped: int


def alpha_curve(forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                radii: tuple[float, ...], draws: int, seed: Callable[[float, int, int], int],
                *, shared: bool = False, batch_size: int = 200,
                advance: Callable[[int, int], None] | None = None) -> dict[float, Point]:
    """The curve at every radius of ``radii`` (running max in increasing radius).

    ``seed(radius, draw, block)`` seeds the noise of one draw on one block of :data:`BLOCK`
    images (``block`` 0 for shared noise)."""
    device, shape, n = images.device, tuple(images.shape[1:]), len(images)
    with torch.inference_mode():
        clean = torch.cat([torch.softmax(forward(images[a:a + batch_size]).float(), dim=1)
                           for a in range(0, n, batch_size)])
    per_block = [min(BLOCK, n - b) for b in range(0, n, BLOCK)]
    total = len(set(radii)) * draws * sum(math.ceil(c / batch_size) for c in per_block)
    done, best, out = 0, -math.inf, {}
    for radius in sorted(set(radii)):
        top, counted = -math.inf, 0
        for draw in range(draws):
            if shared:
                gen = torch.Generator(device=device).manual_seed(seed(radius, draw, 0))
                vector = scaled_noise(1, shape, radius, gen, device)
            for block, count in enumerate(per_block):
                start = block * BLOCK
                if shared:
                    noise = vector.expand(count, *shape)
                else:
                    gen = torch.Generator(device=device).manual_seed(seed(radius, draw, block))
                    noise = scaled_noise(count, shape, radius, gen, device)
                for a in range(0, count, batch_size):
                    rows = slice(start + a, start + min(a + batch_size, count))
                    r = ratios(forward, images[rows], clean[rows], noise[a:a + batch_size])
                    ok = r[~r.isnan()]
                    counted += len(ok)
                    if len(ok):
                        top = max(top, float(ok.max()))
                    done += 1
                    if advance is not None:
                        advance(done, total)
        raw = top if counted else math.nan
        if counted:
            best = max(best, top)
        out[radius] = Point(raw, best if best > -math.inf else math.nan, counted,
                            draws * n - counted)
    return out


@dataclass(frozen=True)
class LipschitzSettings:
    radius: tuple[float, ...] = setting((), "L2 radii in [0, 1] pixel units, one cell each; "
                                            "empty: LapNet's 30, 1.75 a / 30 for a = 1..30")
    draws: int = setting(100, "noise draws per radius (LapNet: 100)")
    images: int = setting(1000, "the first training images used (LapNet: 1,000; all of "
                                "them when the split is smaller)")
    shared: bool = setting(False, "one noise vector per draw for every image; false: fresh "
                                  "noise per image (LapNet's code)")

    def validate(self) -> None:
        for r in self.radius:
            require(0 < r <= 1000, f"lipschitz radius {r:g} is out of range (0, 1000]")
        require(0 < self.draws <= 100_000, f"draws must be in 1..100000, got {self.draws}")
        require(0 < self.images <= 10_000_000, f"images must be in 1..10000000, got "
                f"{self.images}")


@register_perturbation("lipschitz", "local-Lipschitz curve r_alpha on the first 1,000 "
                       "training images: the max softmax change per unit L2 move under "
                       "random noise of each radius (LapNet: 30 radii to 1.75, 100 draws)")
class Lipschitz(Perturbation):
    Settings = LipschitzSettings
    sweep = "radius"
    order = 95  # the costliest family: radii x draws x images forward passes
    title = "Local Lipschitz α"
    short_title = "lipschitz"
    strengths = {"radius": Strength("radius", "L2")}
    headline_setting = {"grey": 0.875, "colour": 0.875}
    headline = "alpha"
    on_test_images = False  # the training images: --samples leaves the cells as they are
    metrics = (
        Metric("alpha", "lower", "the running max over radii up to r of the largest softmax "
                                 "change per unit L2 displacement"),
        Metric("alpha_raw", "none", "the largest softmax change per unit displacement at this "
                                    "radius alone"),
        Metric("skipped", "none", "share of (image, draw) pairs skipped: clipping left the "
                                  "image unchanged", percent=True),
    )

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self._curve: tuple[EvalContext, str, dict[float, Point]] | None = None

    @classmethod
    def resolve(cls, raw: dict[str, Any], family: str) -> Any:
        """The base class's resolution; an empty ``radius`` becomes LapNet's 30 radii."""
        settings = super().resolve(raw, family)
        if not settings.radius:
            settings = dataclasses.replace(settings, radius=DEFAULT_RADII)
        return settings

    def passes(self, images: int) -> tuple[int, int]:
        """The whole curve at once, on its own ``images`` training images: the clean forward,
        then ``draws`` noisy forwards per radius (``images`` test images are not used)."""
        return self.settings.images * (1 + self.settings.draws * self.cell_count()), 0

    def grid(self) -> tuple[float, ...]:
        return tuple(sorted({self.sweep_value("radius", r) for r in self.settings.radius}))

    def cells(self, test_images: ImageSubset) -> list[Cell]:
        """One cell per radius; the whole grid is in every cell's settings (the running max
        depends on it)."""
        return [dataclasses.replace(c, settings={**c.settings, "grid": list(self.grid())})
                for c in super().cells(test_images)]

    def curve(self, cell: Cell, ctx: EvalContext) -> dict[float, Point]:
        key = settings_fingerprint(self.name, self.version, cell.settings)
        if self._curve is not None and self._curve[0] is ctx and self._curve[1] == key:
            return self._curve[2]
        s = self.settings
        if ctx.train_data is not None:
            data = ctx.train_data()
            images = data.float(slice(0, min(s.images, len(data)))).to(ctx.device)
        else:
            images = ctx.images[:s.images]
        with torch.inference_mode():  # NaN logits would make every pair "skipped"
            for a in range(0, len(images), ctx.batch_size):
                ctx.predictions(ctx.model(images[a:a + ctx.batch_size]), self.name)
        run = ctx.run

        def seed(radius: float, draw: int, block: int) -> int:
            return stable_seed(run, self.name, f"{radius:.10g}", draw, block)

        points = alpha_curve(ctx.model, images, self.grid(), s.draws, seed, shared=s.shared,
                             batch_size=ctx.batch_size, advance=ctx.advance)
        self._curve = (ctx, key, points)
        return points

    def evaluate(self, cell: Cell, ctx: EvalContext) -> list[Measurement]:
        point = self.curve(cell, ctx)[cell.param_value]
        pairs = point.counted + point.skipped
        return [Measurement(0, "alpha", point.alpha, point.counted),
                Measurement(0, "alpha_raw", point.raw, point.counted),
                Measurement(0, "skipped", point.skipped / pairs if pairs else math.nan, pairs)]

