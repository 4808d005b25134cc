"""Data: build, split and hide labels of long-tailed multi-label datasets; Dataset, transforms, samplers.

See docs/data.md. A dataset folder (e.g. data/plt/) holds `{train,val,test}.parquet` and `classes.json`.
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations checks PyPI on import otherwise

from comic.data.dataset import MultiLabelDataset  # noqa: E402
from comic.data.samplers import ClassAwareSampler, InstanceSampler  # noqa: E402
from comic.data.store import SPLITS, SplitTable, load_classes, read_split  # noqa: E402
from comic.data.transforms import build_transform, seed_worker  # noqa: E402

__all__ = [
    "SPLITS",
    "ClassAwareSampler",
    "InstanceSampler",
    "MultiLabelDataset",
    "SplitTable",
    "build_transform",
    "load_classes",
    "read_split",
    "seed_worker",
]
