"""Manifest reading, per-modality decoding and the tf.data pipeline."""
from mmkeras.data import audio, image, numeric, text  # noqa: F401  (fill the MODALITIES registry)
from mmkeras.data.modality import MODALITIES, BadValue, handler  # noqa: F401
