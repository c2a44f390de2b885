"""Encoders: one file each, registered by name, chosen by an input's `encoder.type`.

An encoder is a function `fn(features, spec, name, params) -> Encoded` (or a bare
[batch, dim] tensor, its pooled embedding) that adds its layers to the functional graph; `params` is its parameters section, registered under
the same name in `mmkeras.config.encoders` (keys, defaults, ranges, the modalities it
takes) and validated when the config loads. `features` are what the in-model
preprocessing produces for the modality:

    image    float32 [B, H, W, C] in [0, 1]
    text     int32   [B, T] WordPiece ids, 0 = padding
    audio    float32 [B, frames, n_mels] log-mel
    numeric  float32 [B, n_columns] standardised
    timeseries  float32 [B, length, channels] standardised per channel

Besides the pooled embedding an encoder may expose its tokens (image and audio CNN
cells with their 2-D positions, text tokens, transformer tokens, numeric columns) for
the fusions that reason across modalities (`cross_attention`, `film`, `relation`). A
layer that only feeds the tokens is not part of a model whose fusion takes the pooled
vectors: a functional model holds only what reaches its outputs.
"""
import dataclasses

from mmkeras.registry import Registry

ENCODERS = Registry("encoder")


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """What an encoder may need to know about its input beyond the tensor.

    Args:
        modality: the input's type ("image", "text", "audio", "numeric", "timeseries", ...).
        vocab_size: size of the WordPiece vocabulary (text only).
        quantiles: numeric only: per column, the training split's quantiles of the
            standardised values (the bin edges of `PiecewiseLinear`).
    """

    modality: str
    vocab_size: int = 0
    quantiles: tuple = ()


@dataclasses.dataclass(frozen=True)
class Encoded:
    """What an encoder adds to the graph.

    Args:
        embedding: the pooled embedding [B, d].
        tokens: [B, N, d_t], or None when the encoder has no finer view than `embedding`.
        mask: [B, N] (bool or 0/1) real tokens, or None when every token is real.
        grid: (H, W) when the tokens are the cells of an H×W feature map, row-major.
    """

    embedding: object
    tokens: object = None
    mask: object = None
    grid: tuple = None


def build_encoder(features, spec, name, params):
    """Add the encoder `params.type` (validated parameters, e.g. an input's `encoder`) → `Encoded`."""
    out = ENCODERS.get(params.type)(features, spec, name, params)
    return out if isinstance(out, Encoded) else Encoded(out)


# Importing the modules fills the registry.
from mmkeras.encoders import (  # noqa: E402,F401
    audio_cnn, conv1d, homogeneous, hub, image_cnn, tabular_mlp, text_cnn, text_transformer)
