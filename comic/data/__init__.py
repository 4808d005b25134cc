"""Data: build, split and hide labels of long-tailed multi-label datasets; Dataset, transforms, samplers.

See docs/data.md. A dataset folder (e.g. data/plt/) holds `{train,val,test}.parquet` and `classes.json`.
Import the submodules themselves (`comic.data.store`, `comic.data.dataset`, ...): the data stages then
load neither torch nor albumentations.
"""
