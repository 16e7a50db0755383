"""Common corruptions, as cells of (corruption, severity) (docs/perturbations.md#corruptions):

* ``corruptions``: the 15 CIFAR-10-C / ImageNet-C corruptions (Hendrycks & Dietterich, ICLR
  2019) through the optional extra ``robustbench_graph[corruptions]`` (imagecorruptions-imaug),
  on colour images of 32 px or more, or the published CIFAR-10-C ``.npy`` files
  (``rbg attack --corruptions-dir``); :mod:`.library`;
* ``mnist-c``: a native set in the spirit of MNIST-C (Mu & Gilmer, 2019) for images of any
  size and channel count, in torch on the device; :mod:`.native`.
"""

from __future__ import annotations

from ...registry import import_submodules

import_submodules(__name__, __path__)
