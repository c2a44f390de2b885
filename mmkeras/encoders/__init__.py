"""Encoders: one file each, registered by name, chosen by an input's `encoder.type`.

An encoder is a function `fn(features, spec, name, **params) -> [batch, dim]` that
adds its layers to the functional graph. `features` are what the in-model
preprocessing produces for the modality:

    image    float32 [B, H, W, C] in [0, 1]
    text     int32   [B, T] WordPiece ids, 0 = padding
    audio    float32 [B, frames, n_mels] log-mel
    numeric  float32 [B, n_columns] standardised
"""
import dataclasses
import inspect

from mmkeras.errors import ConfigError, did_you_mean
from mmkeras.registry import Registry

ENCODERS = Registry("encoder")

# Used when an input does not name an encoder. Text: `text_cnn` was the best or within a
# point of the best of transformer / bow / text_cnn on all five text sets of the quality
# suite (bench/quality; README "Quality"); bow lost 26 F1 points on long descriptions,
# the transformer 4-12 points on short names and synopses.
DEFAULT_ENCODER = {"image": "cnn", "text": "text_cnn", "audio": "audio_cnn", "numeric": "mlp"}


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


def encoder_params(fn):
    """Names of the keyword parameters an encoder accepts from the config."""
    sig = inspect.signature(fn)
    return [p for p in sig.parameters if p not in ("features", "spec", "name")]


def build_encoder(features, spec, name, encoder_type, params):
    """Validate `params` against the registered encoder and add it to the graph."""
    fn = ENCODERS.get(encoder_type)
    allowed = encoder_params(fn)
    for key in params:
        if key not in allowed:
            raise ConfigError(
                f"inputs.{name}.encoder: unknown key '{key}' for encoder '{encoder_type}'"
                f"{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}"
            )
    return fn(features, spec, name, **params)


# Importing the modules fills the registry.
from mmkeras.encoders import (  # noqa: E402,F401
    audio_cnn, homogeneous, hub, image_cnn, tabular_mlp, text_cnn, text_transformer)
