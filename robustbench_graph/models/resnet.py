"""ResNet18 of the LMD papers (docs/models.md#resnet18).

BasicBlock [2, 2, 2, 2] with a 3x3 stem and no max-pool; global average pooling, ReLU,
Linear(8w, feature_dim) (the penultimate feature, no activation after it), Linear(feature_dim, C).
"""

from __future__ import annotations

import torch
from torch import nn

from ..data import DatasetInfo
from .base import MODELS, TappedModel


class BasicBlock(nn.Module):
    # Parseval networks set this to 0.5: relu(0.5 bn2(conv2(...)) + 0.5 shortcut) (parseval.py).
    residual_weight = 1.0

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        if self.residual_weight != 1.0:
            w = self.residual_weight
            return self.relu2(w * self.bn2(self.conv2(out)) + (1.0 - w) * self.shortcut(x))
        return self.relu2(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(TappedModel):
    def __init__(self, info: DatasetInfo, width: int = 64, feature_dim: int = 30) -> None:
        super().__init__(info)
        w = width
        self.stem = nn.Sequential(
            nn.Conv2d(info.input_shape[0], w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU()
        )
        plan = [(w, w, 1), (w, w, 1), (w, 2 * w, 2), (2 * w, 2 * w, 1),
                (2 * w, 4 * w, 2), (4 * w, 4 * w, 1), (4 * w, 8 * w, 2), (8 * w, 8 * w, 1)]
        self.blocks = nn.ModuleList(BasicBlock(a, b, s) for a, b, s in plan)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.ReLU())
        self.project = nn.Linear(8 * w, feature_dim)
        self.head = nn.Linear(feature_dim, info.num_classes)

    def embed(self, u: torch.Tensor) -> torch.Tensor:
        out = self.stem(u)
        for block in self.blocks:
            out = block(out)
        return self.project(self.pool(out))

    @property
    def relu_taps(self) -> list[nn.Module]:
        taps: list[nn.Module] = [self.stem[2]]
        for block in self.blocks:
            taps += [block.relu1, block.relu2]
        return taps

    @property
    def input_layer(self) -> nn.Module:
        return self.stem[0]

    @property
    def block_taps(self) -> list[nn.Module]:
        return list(self.blocks)

    @property
    def residual_blocks(self) -> list[nn.Module]:
        return list(self.blocks)


@MODELS.register("resnet18", "ResNet18 of the LMD papers (width w, default 64; penultimate "
                 "Linear(8w, feature_dim), default 30)")
def resnet18(info: DatasetInfo, width: int = 64, feature_dim: int = 30) -> ResNet18:
    return ResNet18(info, width, feature_dim)
