"""Frozen configuration records: the one home of defaults, saved with ``asdict``."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .claims import Claim
from .errors import RbgError

# Learning-rate schedule per dataset: (lr, first milestone as a fraction of the epochs, factor).
# LapNet's CIFAR-10 recipe is 0.1, then 0.001 from half-way (docs/models.md#training-recipe). On the
# MNIST-like sets with the BN-free smallcnn it is unstable in short runs (measured, 5 epochs on
# mnist5k: 94.5% and 81.3% test accuracy for seeds 0/1), while 0.05 with x0.1 at 80% gives
# 97.2% / 98.0%: that is their default. Both are overridable with --lr/--lr-milestones/--lr-factor.
LAPNET_SCHEDULE = (0.1, 0.5, 0.01)
GREY_SCHEDULE = (0.05, 0.8, 0.1)
SCHEDULE_PRESETS: dict[str, tuple[float, float, float]] = {
    "mnist5k": GREY_SCHEDULE,
    "digits": GREY_SCHEDULE,
    "mnist": GREY_SCHEDULE,
    "fashion-mnist": GREY_SCHEDULE,
}


SELECT_RULES = ("last", "best-val")  # which epoch's weights a run keeps (TrainConfig.select)
# TrainConfig fields added after runs were recorded, with the defaults that mean "as before".
LATER_FIELDS: dict[str, Any] = {"val_fraction": 0.0, "select": "last"}

MAX_WIDTH = 1024  # PreActResNet18 at 1024 already has ~3e9 weights; beyond is a typo
MAX_FEATURE_DIM = 65536


@dataclass(frozen=True)
class TrainConfig:
    """One training configuration; a run is this plus a seed.

    Defaults follow LapNet's recipe (docs/models.md#training-recipe): SGD momentum 0.9, weight decay
    5e-4, batch 100, no augmentation. The learning-rate schedule left as ``None`` is taken from
    the dataset's preset (:data:`SCHEDULE_PRESETS`) by :meth:`resolved`.
    """

    dataset: str = "mnist5k"
    model: str = "smallcnn"
    width: int | None = None
    feature_dim: int | None = None
    loss: str = "ce"
    loss_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 5
    batch_size: int = 100
    lr: float | None = None
    lr_milestones: tuple[int, ...] | None = None
    lr_factor: float | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = False
    grad_clip: float | None = None
    parseval: bool = False
    parseval_beta: float = 0.01
    amp: bool = False  # bf16 autocast of the forward pass and loss
    split_seed: int = 0
    channels_last: bool = False  # memory layout (models.set_memory_format); NCHW by default
    # The validation split (docs/datasets.md#validation-split): the stratified fraction of the
    # training split held out (seeded by split_seed), and which epoch's weights are kept.
    val_fraction: float = 0.0
    select: str = "last"

    def resolved(self) -> TrainConfig:
        """This config with the schedule's ``None`` fields taken from the dataset preset."""
        lr, fraction, factor = SCHEDULE_PRESETS.get(self.dataset, LAPNET_SCHEDULE)
        milestones = self.lr_milestones
        if milestones is None:
            at = int(round(self.epochs * fraction))
            milestones = (at,) if 0 < at < self.epochs else ()
        return replace(
            self,
            lr=self.lr if self.lr is not None else lr,
            lr_milestones=tuple(milestones),
            lr_factor=self.lr_factor if self.lr_factor is not None else factor,
        )

    def resolved_milestones(self) -> tuple[int, ...]:
        return self.resolved().lr_milestones or ()

    def validate(self) -> None:
        if self.epochs <= 0:
            raise RbgError(f"--epochs must be positive, got {self.epochs}")
        if self.batch_size <= 0:
            raise RbgError(f"--batch-size must be positive, got {self.batch_size}")
        if self.lr is not None and self.lr <= 0:
            raise RbgError(f"--lr must be positive, got {self.lr}")
        if self.lr_factor is not None and self.lr_factor <= 0:
            raise RbgError(f"--lr-factor must be positive, got {self.lr_factor}")
        if not 0 <= self.momentum < 1:
            raise RbgError(f"--momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise RbgError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        for m in self.resolved_milestones():
            if not 0 < m <= self.epochs:
                raise RbgError(f"lr milestone {m} is outside 1..{self.epochs}")
        for name, top in (("width", MAX_WIDTH), ("feature_dim", MAX_FEATURE_DIM)):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and 0 < value <= top):
                raise RbgError(f"--{name.replace('_', '-')} must be an integer in 1..{top}, "
                               f"got {value}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise RbgError(f"--grad-clip must be positive, got {self.grad_clip}")
        if not 0 <= self.split_seed <= MAX_SEED:
            raise RbgError(f"--split-seed must be in 0..{MAX_SEED}, got {self.split_seed}")
        _require_finite(self, ("lr", "lr_factor", "momentum", "weight_decay", "grad_clip",
                               "parseval_beta"))
        fraction = self.val_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) \
                or not 0 <= fraction < 1:
            raise RbgError(f"--val-fraction must be a number in [0, 1), got {fraction!r}")
        if self.select not in SELECT_RULES:
            raise RbgError(f"--select must be one of {', '.join(SELECT_RULES)}, "
                           f"got {self.select!r}")
        if self.select == "best-val" and not fraction:
            raise RbgError("--select best-val needs a validation split: add --val-fraction "
                           "(e.g. 0.1)")

    def to_dict(self) -> dict[str, Any]:
        """The record of ``config.json``. Fields added after runs were first recorded
        (:data:`LATER_FIELDS`) are written only when one of them differs from its default, so
        the records and checkpoints of earlier runs stay those of the same configuration."""
        d = asdict(self)
        if self.lr_milestones is not None:
            d["lr_milestones"] = list(self.lr_milestones)
        if all(d[name] == default for name, default in LATER_FIELDS.items()):
            for name in LATER_FIELDS:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if known.get("lr_milestones") is not None:
            known["lr_milestones"] = tuple(known["lr_milestones"])
        return cls(**known)


def _require_finite(config: Any, names: tuple[str, ...]) -> None:
    """Raise unless every number in the named fields (scalars or tuples) is finite."""
    for name in names:
        value = getattr(config, name)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, float) and not math.isfinite(v):
                raise RbgError(f"--{name.replace('_', '-')} must be a finite number, got {v}")


_SEED_PART = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
MAX_SEED = 2**32 - 1  # NumPy's seed range; torch's is wider
MAX_SEEDS = 10_000  # seeds in one command: beyond that it is a typo, not a sweep


def parse_seeds(text: str) -> list[int]:
    """Parse ``"0-9"``, ``"0,3,5"`` or ``"0-2,7"`` into a sorted list of distinct seeds."""
    seeds: set[int] = set()
    for part in str(text).split(","):
        match = _SEED_PART.match(part)
        if not match:
            raise RbgError(f"malformed seed list {text!r}; use e.g. 0-9 or 0,3,5")
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if hi < lo:
            raise RbgError(f"malformed seed range {part.strip()!r}: end before start")
        if hi > MAX_SEED:
            raise RbgError(f"seed {hi} is out of range (0 to {MAX_SEED})")
        if hi - lo + 1 + len(seeds) > MAX_SEEDS:
            raise RbgError(f"seed list {text!r} names more than {MAX_SEEDS} seeds")
        seeds.update(range(lo, hi + 1))
    return sorted(seeds)


def stable_seed(*parts: Any) -> int:
    """A seed derived from its parts by SHA-256 (stable across processes, unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


SUBSET_RULES = ("spaced", "first")


@dataclass(frozen=True)
class ImageSubset:
    """Which test images an evaluation uses: all, or ``samples`` of them chosen by ``rule``:
    ``spaced`` takes indices 0, s, 2s, ... with s = n // samples (LapNet's DeepFool subset,
    docs/perturbations.md#deepfool), ``first`` the first ``samples``."""

    samples: int | None = None
    rule: str = "spaced"

    def indices(self, n: int) -> list[int]:
        if self.samples is None or self.samples >= n:
            return list(range(n))
        if self.rule == "first":
            return list(range(self.samples))
        return list(range(0, n, max(1, n // self.samples)))[: self.samples]

    def validate(self, flag: str = "--samples") -> None:
        if self.samples is not None and not 0 < self.samples <= MAX_SEED:
            raise RbgError(f"{flag} must be positive, got {self.samples}")
        if self.rule not in SUBSET_RULES:
            raise RbgError(f"unknown subset rule {self.rule!r}; valid: {', '.join(SUBSET_RULES)}")


@dataclass(frozen=True)
class AttackConfig:
    """Settings of one ``rbg attack``. Each perturbation's own settings live in its
    ``Settings`` dataclass (the one home of their defaults); ``settings`` holds only what the
    user changed (``-p name.key=value``), as typed, per perturbation. ``batch_size`` and the
    device change how fast, not what is computed: they are recorded, not fingerprinted."""

    settings: dict[str, dict[str, str]] = field(default_factory=dict)
    test_images: ImageSubset = ImageSubset()
    batch_size: int | None = None  # None: 1000 on GPUs, 200 on CPUs (device.eval_batch_size)

    def validate(self) -> None:
        self.test_images.validate()
        if self.batch_size is not None and not 0 < self.batch_size <= 1_000_000:
            raise RbgError(f"--batch-size must be in 1..1000000, got {self.batch_size}")


BASELINE_METHOD = "ce"  # the method every other one is compared with, unless told otherwise


@dataclass(frozen=True)
class ReportConfig:
    """Settings of one ``rbg report`` (and an experiment file's ``[report]`` table): the one
    home of their defaults. ``columns`` None: clean, every family at its headline setting and
    every curve's area (docs/cli.md#rbg-report). ``claims``: declared hypotheses the report
    tests (an experiment's ``[[claims]]``, or ``rbg report --claims``)."""

    baseline: str = BASELINE_METHOD
    plots: bool = True
    columns: tuple[str, ...] | None = None
    claims: tuple[Claim, ...] = ()

    def validate(self) -> None:
        """Refuse a column named twice (each would be computed again, ~0.15 s apiece)."""
        seen: set[str] = set()
        for column in self.columns or ():
            if column in seen:
                raise RbgError(f"columns: {column!r} is named more than once")
            seen.add(column)
