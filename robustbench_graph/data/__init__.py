"""Datasets: the registry of image datasets (:mod:`.datasets`; the sources in :mod:`.sources`
and :mod:`.imagefolder`, their files read by :mod:`.files`), the validation split held out of
a training split (:mod:`.split`) and the plain types every other layer uses
(:class:`DatasetInfo`, :class:`ImageData`, :mod:`.types`).

Every dataset yields images in [0, 1] (float, N x C x H x W) and int64 labels, and declares its
number of classes, input shape and the channel mean/std of its training split
(docs/datasets.md).
"""

from .datasets import DATASETS, dataset_info, default_data_dir, load_dataset
from .families import FAMILIES, dataset_family, family_of
from .sources import split_indices, stratified_split
from .split import ValidationSplit, indices_digest, split_validation, validation_indices
from .types import DatasetInfo, ImageData, info_from_record

__all__ = ["DATASETS", "FAMILIES", "DatasetInfo", "ImageData", "ValidationSplit",
           "dataset_family", "dataset_info", "family_of",
           "default_data_dir", "indices_digest", "info_from_record", "load_dataset",
           "split_indices", "split_validation", "stratified_split", "validation_indices"]
