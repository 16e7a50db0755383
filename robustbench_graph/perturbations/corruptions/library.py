"""The 15 common corruptions of CIFAR-10-C / ImageNet-C (Hendrycks & Dietterich, ICLR 2019)
through imagecorruptions-imaug, the optional extra ``robustbench_graph[corruptions]``
(docs/perturbations.md#corruptions).

Each image goes to the library as uint8 HWC (0..255) and comes back as a [0, 1] float. The
library draws from numpy's global generator (and takes a seed for impulse noise and glass
blur): each image is corrupted under its own seed, derived from the run, the corruption, the
draw and the image's index in the test split, with numpy's global state restored afterwards,
so a cell reproduces exactly, whatever the batch size or ``--samples``, and every severity of a
corruption sees the same random draw. Severity 0 is the clean image.

The library refuses images under 32 px and turns one-channel images into RGB: such images
are refused, pointing to the native ``mnist-c`` family meant for them (``--suite all``
measures this family on colour runs only), unless ``adapt=true``: a grey image is then
repeated to RGB and the result averaged back, a small one resized up (bilinear) to 32 px and
the result resized back; the numbers are then not comparable with CIFAR-10-C's.

With ``dir`` (``rbg attack --corruptions-dir``), the images are read from the published
CIFAR-10-C files instead (the LapNet code's protocol): ``<dir>/<corruption>.npy`` of shape
(5 N, H, W, 3) uint8, severity s of test image i at row (s - 1) N + i, and ``<dir>/labels.npy``
(5 N labels), checked against the test split's.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import RbgError
from ...lazy import F, inference_mode, torch
from ...settings import setting
from ..checks import require
from ..context import Draw
from ..family import register_perturbation
from .base import SEVERITIES, CorruptionFamily, check_choice, severity_strengths

EXTRA_MESSAGE = ("the corruptions perturbation needs the optional extra: pip install "
                 "'robustbench_graph[corruptions]' (or give --corruptions-dir)")
# The 15 corruptions of CIFAR-10-C, in the library's (and the paper's) order.
CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
               "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
               "elastic_transform", "pixelate", "jpeg_compression")
SEEDED = ("impulse_noise", "glass_blur")  # those taking a seed argument as well
MIN_SIZE = 32
LABELS = "labels.npy"


def load_library() -> Any:
    """imagecorruptions' ``corrupt`` function.

    Raises:
        RbgError: the optional extra is not installed (one line saying how to install it).
    """
    try:
        from imagecorruptions import corrupt
    except ImportError:
        raise RbgError(EXTRA_MESSAGE) from None
    return corrupt


def image_seed(seed: int, index: int) -> int:
    """The 32-bit seed of one image of one draw (numpy's global seed takes 32 bits)."""
    return int(np.random.SeedSequence((seed, int(index))).generate_state(1)[0])


def corrupt_images(images: np.ndarray, name: str, severity: int, seeds: list[int]
                   ) -> np.ndarray:
    """Corrupt uint8 images (N, H, W, 3), each under its own seed; numpy's global generator
    is left as it was."""
    corrupt = load_library()
    out = np.empty_like(images)
    state = np.random.get_state()
    try:
        for k, (image, seed) in enumerate(zip(images, seeds, strict=True)):
            np.random.seed(seed)
            extra = {"seed": seed} if name in SEEDED else {}
            out[k] = corrupt(image, severity=severity, corruption_name=name, **extra)
    finally:
        np.random.set_state(state)
    return out


def corrupt_batch(u: torch.Tensor, name: str, severity: int, seeds: list[int],
                  adapt: bool = True) -> torch.Tensor:
    """A batch of [0, 1] images (N, C, H, W) through one corruption at one severity (0: the
    identity). ``adapt``: one-channel images are repeated to RGB and averaged back, images
    under 32 px resized up (bilinear) and back."""
    if severity == 0:
        return u
    n, c, h, w = u.shape
    x = u
    if c == 1 and adapt:
        x = x.expand(n, 3, h, w)
    grow = min(h, w) < MIN_SIZE and adapt
    if grow:
        f = MIN_SIZE / min(h, w)
        x = F.interpolate(x, size=(math.ceil(h * f), math.ceil(w * f)), mode="bilinear",
                          align_corners=False)
    check_images(x.shape[1:], "corruptions")
    pixels = (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    done = corrupt_images(np.ascontiguousarray(pixels.cpu().numpy()), name, severity, seeds)
    y = torch.from_numpy(done).to(u.device).permute(0, 3, 1, 2).float().div(255)
    if grow:
        y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    if c == 1 and adapt:
        y = y.mean(1, keepdim=True)
    return y


def check_images(shape: tuple[int, ...] | torch.Size, what: str) -> None:
    """Refuse what the library cannot take: one channel, or under 32 px."""
    c, h, w = (int(v) for v in shape)
    if c != 3 or min(h, w) < MIN_SIZE:
        raise RbgError(f"{what} needs colour images of at least {MIN_SIZE}x{MIN_SIZE} px (the "
                       f"library's corruptions refuse smaller ones), got {c}x{h}x{w}: use "
                       "--suite mnist-c (native, any size), or -p corruptions.adapt=true")


def _load_npy(path: Path) -> np.ndarray:
    """A memory-mapped ``.npy`` array, or one line saying why the file is not one."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise RbgError(f"{path} is not a readable .npy array ({err})") from None


@dataclass(frozen=True)
class CorruptionSettings:
    corruption: tuple[str, ...] = setting(CORRUPTIONS, "corruptions, one curve each (default: "
                                                       "the 15 of CIFAR-10-C)")
    severity: tuple[int, ...] = setting(SEVERITIES, "severities 1..5, one cell each with "
                                                    "every corruption (0: the clean images)")
    draws: int = setting(1, "draws per cell (CIFAR-10-C: one fixed draw; 1 with dir)")
    dir: str = setting("", "folder of the CIFAR-10-C .npy files (<corruption>.npy, labels.npy) "
                           "to evaluate on instead of generated images (--corruptions-dir)")
    adapt: bool = setting(False, "one-channel or under-32-px images, which the library "
                                "refuses: true: grey repeated to RGB and averaged back, small "
                                "images resized up to 32 px and back; false: refused")

    def validate(self) -> None:
        check_choice("corruptions", self.corruption, self.severity, CORRUPTIONS, self.draws)
        require(not self.dir or Path(self.dir).expanduser().is_dir(),
                f"corruptions.dir {self.dir} is not a folder")
        require(not self.dir or self.draws == 1, "corruptions.dir: the files are one fixed "
                f"draw; draws must be 1, got {self.draws}")


@register_perturbation("corruptions", "the 15 CIFAR-10-C corruptions x 5 severities "
                       "(imagecorruptions, optional extra; or the CIFAR-10-C .npy files with "
                       "--corruptions-dir); colour images of 32 px or more")
class Corruptions(CorruptionFamily):
    Settings = CorruptionSettings
    order = 16
    title = "Common corruptions"
    short_title = "corrupt"
    names = CORRUPTIONS
    strengths = severity_strengths(CORRUPTIONS)
    requires = ("imagecorruptions", "corruptions")
    suite_families = ("colour",)  # --suite all on grey runs measures mnist-c instead

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        if not self.settings.dir:
            load_library()  # the missing extra fails when the family is built
        self._files: dict[str, np.ndarray] = {}

    @classmethod
    def resolve(cls, raw: dict[str, Any], family: str) -> Any:
        """The base class's resolution; ``dir`` becomes an absolute path."""
        settings = super().resolve(raw, family)
        if settings.dir:
            settings = dataclasses.replace(settings, dir=str(Path(settings.dir).expanduser()
                                                             .resolve()))
        return settings

    def begin(self, draw: Draw) -> None:
        shape = tuple(draw.ctx.images.shape[1:])
        if self.settings.dir:
            self._check_files(draw)
        elif not self.settings.adapt:
            check_images(shape, "corruptions")

    @inference_mode
    def perturb(self, u: torch.Tensor, y: torch.Tensor, draw: Draw, forward: object
                ) -> torch.Tensor:
        severity = self.severity(draw)
        if severity == 0:
            return u
        index = draw.test_indices()
        if self.settings.dir:
            array = self._files[draw.cell.param]
            n = len(array) // 5
            rows = array[((severity - 1) * n + index).numpy()]
            return torch.from_numpy(np.ascontiguousarray(rows)).to(u.device).permute(
                0, 3, 1, 2).float().div(255)
        seed = self.draw_seed(draw)
        return corrupt_batch(u, draw.cell.param, severity,
                             [image_seed(seed, i) for i in index.tolist()],
                             adapt=self.settings.adapt)

    # --corruptions-dir ---------------------------------------------------------------------
    def _check_files(self, draw: Draw) -> None:
        """The files exist and fit the test split: shapes, size and labels."""
        folder = Path(self.settings.dir)
        ctx = draw.ctx
        labels_path = folder / LABELS
        if not labels_path.is_file():
            raise RbgError(f"corruptions.dir {folder}: no {LABELS} (CIFAR-10-C's folder holds "
                           f"{LABELS} and one <corruption>.npy per corruption)")
        labels = _load_npy(labels_path)
        if labels.ndim != 1 or len(labels) % 5 or not len(labels):
            raise RbgError(f"{labels_path} holds {labels.shape} labels; expected 5 x N "
                           "(5 severities of N test images)")
        n = len(labels) // 5
        total = len(ctx.data) if ctx.test_indices is None else None
        index = ctx.test_index(torch.arange(len(ctx.data))).cpu().numpy()
        if (total is not None and total != n) or (len(index) and int(index.max()) >= n):
            raise RbgError(f"corruptions.dir {folder} holds 5 x {n} images, but the test "
                           f"split has {total if total is not None else 'more'} images (the "
                           "CIFAR-10-C files go with CIFAR-10's 10,000 test images)")
        c, h, w = (int(v) for v in ctx.images.shape[1:])
        name = draw.cell.param
        path = folder / f"{name}.npy"
        if not path.is_file():
            raise RbgError(f"corruptions.dir {folder}: no {name}.npy")
        array = _load_npy(path)
        if array.shape != (5 * n, h, w, c) or array.dtype != np.uint8:
            raise RbgError(f"{path} has shape {array.shape} ({array.dtype}); expected "
                           f"({5 * n}, {h}, {w}, {c}) uint8 for {c}x{h}x{w} test images")
        severity = self.severity(draw)
        if severity:
            expected = ctx.data.labels.cpu().numpy()
            got = np.asarray(labels[(severity - 1) * n + index])
            if not np.array_equal(got.astype(np.int64), expected.astype(np.int64)):
                raise RbgError(f"{labels_path} does not match the test split's labels at "
                               f"severity {severity}: are these the files of this dataset?")
        self._files[name] = array
