"""Encoders: one file each, registered by name, chosen by an input's `encoder.type`.

An encoder is a function `fn(features, spec, name, params) -> [batch, dim]` that adds
its layers to the functional graph; `params` is its parameters section, registered under
the same name in `mmkeras.config.encoders` (keys, defaults, ranges, the modalities it
takes) and validated when the config loads. `features` are what the in-model
preprocessing produces for the modality:

    image    float32 [B, H, W, C] in [0, 1]
    text     int32   [B, T] WordPiece ids, 0 = padding
    audio    float32 [B, frames, n_mels] log-mel
    numeric  float32 [B, n_columns] standardised
"""
import dataclasses

from mmkeras.registry import Registry

ENCODERS = Registry("encoder")


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """What an encoder may need to know about its input beyond the tensor.

    Args:
        modality: "image", "text", "audio" or "numeric".
        vocab_size: size of the WordPiece vocabulary (text only).
        quantiles: numeric only: per column, the training split's quantiles of the
            standardised values (the bin edges of `PiecewiseLinear`).
    """

    modality: str
    vocab_size: int = 0
    quantiles: tuple = ()


def build_encoder(features, spec, name, params):
    """Add the encoder `params.type` (validated parameters, e.g. an input's `encoder`) to the graph."""
    return ENCODERS.get(params.type)(features, spec, name, params)


# Importing the modules fills the registry.
from mmkeras.encoders import (  # noqa: E402,F401
    audio_cnn, homogeneous, hub, image_cnn, tabular_mlp, text_cnn, text_transformer)
