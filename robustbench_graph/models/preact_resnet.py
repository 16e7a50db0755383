"""PreActResNet18 as in the LapNet code (docs/models.md#preactresnet18).

Stem conv3x3 with no BN/ReLU; 8 pre-activation blocks of widths
[w, w, 2w/s2, 2w, 4w/s2, 4w, 8w/s2, 8w]; head ReLU (no final BN), global average pooling,
Linear(8w, C); convolutions without bias. Its 17 post-ReLU taps are relu1 and relu2 of each
block plus the final ReLU (LapNet Appendix C: "smoothness gaps are calculated after each ReLU").
"""

from __future__ import annotations

import torch
from torch import nn

from ..data import DatasetInfo
from .base import MODELS, TappedModel


class PreActBlock(nn.Module):
    # Parseval networks set this to 0.5: out = 0.5 conv2(...) + 0.5 shortcut (parseval.py).
    residual_weight = 1.0

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = (
            nn.Conv2d(c_in, c_out, 1, stride, bias=False)
            if stride != 1 or c_in != c_out else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r1 = self.relu1(self.bn1(x))
        short = self.shortcut(r1) if self.shortcut is not None else x
        r2 = self.relu2(self.bn2(self.conv1(r1)))
        if self.residual_weight != 1.0:
            w = self.residual_weight
            return w * self.conv2(r2) + (1.0 - w) * short
        return self.conv2(r2) + short


class PreActResNet18(TappedModel):
    laplacian_gamma = 10.0  # LapNet's gamma = 0.01 at b = 100 on the batch scale (laplacian.py)

    def __init__(self, info: DatasetInfo, width: int = 64) -> None:
        super().__init__(info)
        w = width
        self.stem = nn.Conv2d(info.input_shape[0], w, 3, 1, 1, bias=False)
        plan = [(w, w, 1), (w, w, 1), (w, 2 * w, 2), (2 * w, 2 * w, 1),
                (2 * w, 4 * w, 2), (4 * w, 4 * w, 1), (4 * w, 8 * w, 2), (8 * w, 8 * w, 1)]
        self.blocks = nn.ModuleList(PreActBlock(a, b, s) for a, b, s in plan)
        self.final_relu = nn.ReLU()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8 * w, info.num_classes)

    def embed(self, u: torch.Tensor) -> torch.Tensor:
        out = self.stem(u)
        for block in self.blocks:
            out = block(out)
        return self.pool(self.final_relu(out))

    @property
    def relu_taps(self) -> list[nn.Module]:
        taps: list[nn.Module] = []
        for block in self.blocks:
            taps += [block.relu1, block.relu2]
        return [*taps, self.final_relu]

    @property
    def input_layer(self) -> nn.Module:
        return self.stem

    @property
    def block_taps(self) -> list[nn.Module]:
        return list(self.blocks)

    @property
    def residual_blocks(self) -> list[nn.Module]:
        return list(self.blocks)


@MODELS.register("preactresnet18", "PreActResNet18 of LapNet (width w, default 64; "
                 "17 post-ReLU taps, 8 blocks)")
def preactresnet18(info: DatasetInfo, width: int = 64) -> PreActResNet18:
    return PreActResNet18(info, width)
