"""torch's oneDNN channels-last Conv2d backward on few channels, as a user would run it.

On torch 2.14.1 with an AVX2-only CPU (or ONEDNN_MAX_CPU_ISA=AVX2 on a newer one) this aborts
with a heap corruption (``free(): invalid next size``) for c = 6. rbg never reaches it by
default: models run contiguous (NCHW), and ``--channels-last`` is refused on a CPU below 8
channels (tests/test_layouts.py). Usage::

    ONEDNN_MAX_CPU_ISA=AVX2 python scripts/onednn-channels-last-repro.py [c]
"""

import sys

import torch
from torch import nn

torch.set_num_threads(1)
c = int(sys.argv[1]) if len(sys.argv) > 1 else 6
conv = nn.Conv2d(c, 2 * c, 1, 2, bias=False).to(memory_format=torch.channels_last)
x = torch.rand(8, c, 16, 16).contiguous(memory_format=torch.channels_last).requires_grad_()
conv(x).sum().backward()
print(f"c = {c}: no abort")
