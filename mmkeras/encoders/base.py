"""The encoder plugin contract: one file per encoder, `mmkeras.encoders.<type>`.

An encoder file holds its parameters section (an `EncoderParams` subclass registered in
`ENCODER_PARAMS`: keys, defaults, ranges, the modalities it takes; validated when the config
loads) and its builder, registered in `ENCODERS` under the same name: a function
`fn(features, spec, name, params) -> Encoded` (or a bare [batch, dim] tensor, its pooled
embedding) that adds its layers to the functional graph. `features` are what the
modality's in-model preprocessing produces:

    image       float32 [B, H, W, C] in [0, 1]
    text        int32   [B, T] WordPiece ids, 0 = padding
    audio       float32 [B, frames, n_mels] log-mel
    numeric     float32 [B, n_columns] standardised
    timeseries  float32 [B, length, channels] standardised per channel

Besides the pooled embedding an encoder may expose its tokens (CNN cells with their
positions, text tokens, transformer tokens, numeric columns) for the fusions that reason
across modalities (`cross_attention`, `film`, `relation`). A layer that only feeds the
tokens is not part of a model whose fusion takes the pooled vectors: a functional model
holds only what reaches its outputs.

Encoder files name TensorFlow through `mmkeras.lazy` and import their Keras layers
(`mmkeras.layers`) inside the builder: the config reads the parameters before TensorFlow loads.
"""
import dataclasses
from typing import ClassVar

from mmkeras.config.base import one_of, section
from mmkeras.registry import Registry

ENCODERS = Registry("encoder")
ENCODER_PARAMS = Registry("encoder")

# In an encoder's `modalities`: it takes every input type (each modality plugin makes tokens).
EVERY_MODALITY = "*"


@section
class EncoderParams:
    """What every encoder's parameters have: the `type` that picks it, the modalities it takes."""

    modalities: ClassVar[tuple] = ()
    type: str

    def check_input(self, inp):
        """Raise ValueError if these parameters cannot encode input `inp` (its other settings)."""


def takes(params, modality):
    return modality in params.modalities or EVERY_MODALITY in params.modalities


def encoder_choice(modality):
    """The type of an input's `encoder` field: one of the encoders that take `modality`."""
    return one_of([ENCODER_PARAMS.get(n) for n in ENCODER_PARAMS.names() if takes(ENCODER_PARAMS.get(n), modality)],
                  ENCODER_PARAMS)


def default_encoder(name):
    """The `encoder` field's default: encoder `name` with its defaults (a modality's default encoder)."""
    return dataclasses.field(default_factory=ENCODER_PARAMS.get(name))


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
