"""The plain dataset types every layer uses: :class:`DatasetInfo` (what a model and the
attacks need to know about a dataset, also recorded in a run's ``config.json``) and
:class:`ImageData` (a split's images and labels)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and the attacks need to know about a dataset."""

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool  # horizontal flips are label-preserving (augmentation)
    embedded: bool  # ships with the package: no folder needed


@dataclass
class ImageData:
    """Images stored as integers (N, C, H, W; uint8, or int32 for 16-bit images) with a
    divisor (255, 65535); ``float()`` gives [0, 1] tensors."""

    images: torch.Tensor
    labels: torch.Tensor
    scale: float
    info: DatasetInfo

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def float(self, index: torch.Tensor | slice | None = None) -> torch.Tensor:
        import torch

        imgs = self.images if index is None else self.images[index]
        return imgs.to(torch.float32).div_(self.scale)

    def to(self, device: torch.device | str) -> ImageData:
        """The same data on ``device`` (pinned first when copying to a GPU)."""
        import torch

        images = self.images
        if torch.device(device).type == "cuda" and images.device.type == "cpu":
            images = images.pin_memory()
        return ImageData(images.to(device, non_blocking=True), self.labels.to(device),
                         self.scale, self.info)

    def subset(self, index: torch.Tensor) -> ImageData:
        return ImageData(self.images[index], self.labels[index], self.scale, self.info)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """``(image, label)``: a [0, 1] float (C, H, W) tensor and an int, so the data works
        as a ``torch.utils.data.Dataset`` (e.g. in a ``DataLoader``)."""
        return self.float(slice(i, i + 1))[0], int(self.labels[i])


def info_from_record(record: dict) -> DatasetInfo:
    """The :class:`DatasetInfo` a run's config recorded (``dataset_info``)."""
    d = dict(record)
    return DatasetInfo(str(d["name"]), int(d["num_classes"]),
                       tuple(int(v) for v in d["input_shape"]),  # type: ignore[arg-type]
                       tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]),
                       bool(d["flip"]), bool(d["embedded"]))
