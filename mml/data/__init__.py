"""Data: dataset layouts, video decoding, frame/flow caches, sampling, modalities and transforms."""
