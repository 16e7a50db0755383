"""A small CNN: conv(w)-pool-conv(2w)-pool-fc(feature_dim)-fc(C), ReLU, no batch-norm.

The network of our mnist5k measurements (conv32-conv64-fc128-fc10; docs/models.md#smallcnn).
``smallcnn-smooth`` is the same network with GELU for ReLU and average for max pooling: its
loss is twice differentiable in the input, so the finite-difference curvature estimate and
the exact Hessian agree on it (docs/models.md#smallcnn-smooth).
"""

from __future__ import annotations

from torch import nn

from ..data import DatasetInfo
from .base import MODELS, TappedModel


class SmallCNN(TappedModel):
    def __init__(self, info: DatasetInfo, width: int = 32, feature_dim: int = 128,
                 smooth: bool = False) -> None:
        super().__init__(info)
        channels, height, wid = info.input_shape
        act = nn.GELU if smooth else nn.ReLU
        pool = nn.AvgPool2d if smooth else nn.MaxPool2d
        self.block1 = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), act(), pool(2))
        self.block2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), act(), pool(2))
        flat = 2 * width * (height // 4) * (wid // 4)
        self.block3 = nn.Sequential(nn.Flatten(), nn.Linear(flat, feature_dim), act())
        self.head = nn.Linear(feature_dim, info.num_classes)

    def embed(self, u):  # noqa: ANN001, ANN201
        return self.block3(self.block2(self.block1(u)))

    @property
    def relu_taps(self) -> list[nn.Module]:
        return [self.block1[1], self.block2[1], self.block3[2]]

    @property
    def input_layer(self) -> nn.Module:
        return self.block1[0]

    @property
    def block_taps(self) -> list[nn.Module]:
        return [self.block1, self.block2, self.block3]


@MODELS.register("smallcnn", "conv(w)-conv(2w)-fc(feature_dim) CNN, no batch-norm; "
                 "default for 28x28 and 8x8 grey inputs (width 32, feature_dim 128)")
def smallcnn(info: DatasetInfo, width: int = 32, feature_dim: int = 128) -> SmallCNN:
    return SmallCNN(info, width, feature_dim)


@MODELS.register("smallcnn-smooth", "smallcnn with GELU and average pooling: a loss twice "
                 "differentiable in the input (for curvature studies)")
def smallcnn_smooth(info: DatasetInfo, width: int = 32, feature_dim: int = 128) -> SmallCNN:
    return SmallCNN(info, width, feature_dim, smooth=True)
