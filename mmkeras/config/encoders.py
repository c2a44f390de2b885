"""Every encoder's parameters (`inputs[].encoder`), typed, and which modalities it takes.

The single source of each encoder's keys, defaults and ranges: the builder registered
under the same name in `mmkeras.encoders` receives one of these, validated when the config
loads. They live apart from the builders because those import TensorFlow, and the config
is checked before TensorFlow loads.
"""
import dataclasses
from typing import Annotated, ClassVar, Literal, Optional

import pydantic

from mmkeras.config.base import (Bool, NonEmpty, NonNegativeInt, PositiveInt, Rate, heads_divide_dim, one_of,
                                 registered, section)
from mmkeras.registry import Registry

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


@section
class ConvStackParams(EncoderParams):
    """The conv stack `cnn` and `audio_cnn` share (`mmkeras.encoders.image_cnn.conv_stack`).

    Args:
        filters: output channels of each stage; one stage per entry, each halves both sides.
        convs_per_stage: conv layers per stage.
        dim: size of the output embedding.
        dropout: dropout rate before the projection.
        pooling: "average" (global average pool: position-free, few weights) or "flatten"
            (every cell of the last feature map feeds the projection, so position survives).
    """

    filters: Annotated[list[PositiveInt], NonEmpty] = dataclasses.field(default_factory=lambda: [16, 32, 64])
    convs_per_stage: PositiveInt = 1
    dim: PositiveInt = 128
    dropout: Rate = 0.0
    pooling: Literal["average", "flatten"] = "average"


@registered(ENCODER_PARAMS)
class CnnParams(ConvStackParams):
    """`cnn`: a small VGG-style image encoder.

    Args:
        augment: > 0 shifts training images by up to this fraction of their size (`RandomShift`).

    Example:
        encoder: {type: cnn, filters: [16, 32], dim: 64}
    """

    modalities: ClassVar[tuple] = ("image",)
    type: Literal["cnn"] = "cnn"
    augment: Rate = 0.0


@registered(ENCODER_PARAMS)
class AudioCnnParams(ConvStackParams):
    """`audio_cnn`: the conv stack over the log-mel spectrogram as a 1-channel image.

    Args:
        normalize: "utterance" divides each clip's log-mel, minus its per-band mean over time,
            by its standard deviation (an unseen voice, microphone or level looks like the
            trained ones); "batch" uses learned per-band statistics only.
        spec_augment: mask random time and mel bands in training (`SpecAugment`).

    Example:
        encoder: {type: audio_cnn, filters: [16, 32, 64], dim: 64}
    """

    modalities: ClassVar[tuple] = ("audio",)
    type: Literal["audio_cnn"] = "audio_cnn"
    normalize: Literal["batch", "utterance"] = "utterance"
    spec_augment: Bool = False


@registered(ENCODER_PARAMS)
class Conv1dParams(ConvStackParams):
    """`conv1d`: the conv stack along time over a [samples, channels] trace.

    Args:
        kernel_size: samples each convolution spans.

    Example:
        encoder: {type: conv1d, filters: [32, 64], kernel_size: 7, dim: 64}
    """

    modalities: ClassVar[tuple] = ("timeseries",)
    type: Literal["conv1d"] = "conv1d"
    filters: Annotated[list[PositiveInt], NonEmpty] = dataclasses.field(default_factory=lambda: [32, 64, 128])
    kernel_size: PositiveInt = 5


@section
class AttentionStackParams(EncoderParams):
    """What `transformer` and `homogeneous` share: Transformer blocks of this shape.

    Args:
        dim: token and model width (divisible by `heads`).
        heads: attention heads per block.
        ff_dim: hidden width of each block's feed-forward network.
        dropout: dropout rate in the blocks and on the tokens.
    """

    dim: PositiveInt = 64
    heads: PositiveInt = 2
    ff_dim: PositiveInt = 128
    dropout: Rate = 0.1

    _heads_divide_dim = pydantic.model_validator(mode="after")(heads_divide_dim)


@registered(ENCODER_PARAMS)
class TransformerParams(AttentionStackParams):
    """`transformer`: token embeddings + learned positions + Transformer blocks + masked mean.

    Args:
        layers: number of Transformer blocks.

    Example:
        encoder: {type: transformer, dim: 128, heads: 4, layers: 2}
    """

    modalities: ClassVar[tuple] = ("text",)
    type: Literal["transformer"] = "transformer"
    layers: PositiveInt = 1


@registered(ENCODER_PARAMS)
class HomogeneousParams(AttentionStackParams):
    """`homogeneous`: any modality as tokens through `blocks` identical Transformer blocks.

    Args:
        blocks: depth of the stack.
        patch_size: side of an image patch in pixels; samples per time-series token.
        share_weights: true = one block applied `blocks` times (ALBERT-style), so the
            parameter count does not depend on depth.

    Example:
        encoder: {type: homogeneous, dim: 64, blocks: 4, share_weights: true}
    """

    modalities: ClassVar[tuple] = (EVERY_MODALITY,)
    type: Literal["homogeneous"] = "homogeneous"
    blocks: PositiveInt = 2
    patch_size: PositiveInt = 8
    share_weights: Bool = False

    def check_input(self, inp):
        if inp.type == "image" and self.patch_size > min(inp.size):
            raise ValueError(f"encoder patch_size={self.patch_size} is larger than the "
                             f"{inp.size[0]}x{inp.size[1]} image")


@registered(ENCODER_PARAMS)
class BowParams(EncoderParams):
    """`bow`: the mean of the token embeddings, ignoring padding (a fast baseline).

    Args:
        dim: embedding size.

    Example:
        encoder: {type: bow, dim: 32}
    """

    modalities: ClassVar[tuple] = ("text",)
    type: Literal["bow"] = "bow"
    dim: PositiveInt = 64


@registered(ENCODER_PARAMS)
class TextCnnParams(EncoderParams):
    """`text_cnn`: one Conv1D per n-gram width over the token embeddings, max-pooled (Kim 2014).

    Args:
        dim: embedding size of tokens and of the output.
        widths: n-gram widths, one convolution each.
        filters: output channels of each convolution.
        dropout: dropout rate on the pooled features.

    Example:
        encoder: {type: text_cnn, widths: [2, 3], filters: 32}
    """

    modalities: ClassVar[tuple] = ("text",)
    type: Literal["text_cnn"] = "text_cnn"
    dim: PositiveInt = 64
    widths: Annotated[list[PositiveInt], NonEmpty] = dataclasses.field(default_factory=lambda: [2, 3, 4, 5])
    filters: PositiveInt = 64
    dropout: Rate = 0.1


@registered(ENCODER_PARAMS)
class MlpParams(EncoderParams):
    """`mlp`: Dense + ReLU + Dropout layers over the standardised numeric columns.

    Args:
        units: width of each Dense layer; the last one is the embedding size.
        dropout: dropout rate after each layer.
        bins: > 0 also feeds each column's piecewise-linear encoding over at most this many
            training quantile bins (`PiecewiseLinear`, Gorishniy et al. 2022).

    Example:
        encoder: {type: mlp, units: [128, 64], dropout: 0.1}
    """

    modalities: ClassVar[tuple] = ("numeric",)
    type: Literal["mlp"] = "mlp"
    units: Annotated[list[PositiveInt], NonEmpty] = dataclasses.field(default_factory=lambda: [64, 64])
    dropout: Rate = 0.0
    bins: NonNegativeInt = 16


@registered(ENCODER_PARAMS)
class HubParams(EncoderParams):
    """`hub`: a pretrained TF Hub / SavedModel module, optionally fine-tuned and projected.

    Args:
        handle: TF Hub URL or local SavedModel directory (relative paths: against the config file).
        trainable: fine-tune the module's weights (false = frozen feature extractor).
        output_key: key of the embedding when the module returns a dict.
        dim: size of a Dense projection after the module; null = its output as is.

    Example:
        encoder: {type: hub, handle: models/image_feature_vector, trainable: false, dim: 128}
    """

    modalities: ClassVar[tuple] = ("image", "numeric", "audio")
    type: Literal["hub"] = "hub"
    handle: str
    trainable: Bool = False
    output_key: Optional[str] = None
    dim: Optional[PositiveInt] = None
