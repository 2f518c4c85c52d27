"""Training data: songs from disk (adapters), balanced reproducible sampling, augmentation."""

from .adapters import DATASETS, DataOptions, TrainData, build
from .datasets import ExcerptDataset, ValidationSet
from .sampler import Draw, ExcerptSampler
from .songs import Song, load_songs

__all__ = [
    "DATASETS",
    "DataOptions",
    "Draw",
    "ExcerptDataset",
    "ExcerptSampler",
    "Song",
    "TrainData",
    "ValidationSet",
    "build",
    "load_songs",
]
