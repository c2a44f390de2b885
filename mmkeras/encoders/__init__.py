"""Encoders, one plugin file per type (named by it): an input's `encoder.type` picks one.

Importing the package imports every module in it (`base.py` holds the contract), so adding
an encoder is adding its file.
"""
from mmkeras.encoders.base import (ENCODER_PARAMS, ENCODERS, EVERY_MODALITY, Encoded, EncoderParams,  # noqa: F401
                                   FeatureSpec, build_encoder, default_encoder, encoder_choice, takes)
from mmkeras.registry import import_plugins

import_plugins(__name__)
