"""`cnn`: a small VGG-style image encoder; its conv stack (and its parameters) `audio_cnn` and `conv1d` share."""
import dataclasses
from typing import Annotated, ClassVar, Literal

from mmkeras.config.base import NonEmpty, PositiveInt, Rate, registered, section
from mmkeras.encoders.base import ENCODER_PARAMS, ENCODERS, Encoded, EncoderParams
from mmkeras.lazy import keras


@section
class ConvStackParams(EncoderParams):
    """The conv stack `cnn`, `audio_cnn` and `conv1d` share (`conv_stack`).

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


# Keras' default 0.99 needs hundreds of steps before the moving statistics used at
# inference match the batch statistics; small data sets give a few dozen steps per
# epoch, and validation swung between 20% and 40% on the demo's image head.
BN_MOMENTUM = 0.9


def conv_stack(x, name, params, kernel=3, pool=2):
    """Conv stages → pooling → dropout → Dense(dim) → `Encoded`; the body of every CNN encoder.

    Its tokens are the cells of the last feature map with their positions (`GridTokens`).

    `params` (`ConvStackParams`): filters, convs_per_stage, dim, dropout, pooling. `kernel` and
    `pool`: the convolutions' and pools' sizes (an int or (rows, columns)). "flatten"
    pooling lets where a feature sits reach the embedding: strokes of a digit, parts of a
    spectrogram.

    Only Conv2D, BatchNorm (folded at export), ReLU, MaxPool, mean and Dense, so int8
    TFLite conversion needs no special ops.
    """
    from mmkeras.layers.tokens import GridTokens

    for stage, stage_filters in enumerate(params.filters, start=1):
        for conv in range(1, params.convs_per_stage + 1):
            prefix = f"{name}_stage{stage}_conv{conv}"
            # No bias: the BatchNorm right after supplies the offset.
            x = keras.layers.Conv2D(stage_filters, kernel, padding="same", use_bias=False, name=prefix)(x)
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{prefix}_bn")(x)
            x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
        # "same" pooling rounds up, so inputs smaller than 2**stages never shrink to zero.
        x = keras.layers.MaxPool2D(pool, padding="same", name=f"{name}_stage{stage}_pool")(x)
    feature_map = x
    if params.pooling == "flatten":
        x = keras.layers.Flatten(name=f"{name}_pool")(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    x = keras.layers.Dropout(params.dropout, name=f"{name}_dropout")(x)
    embedding = keras.layers.Dense(params.dim, name=f"{name}_projection")(x)
    tokens = GridTokens(name=f"{name}_cells")(feature_map)
    return Encoded(embedding, tokens, grid=tuple(feature_map.shape[1:3]))


@ENCODERS.register("cnn")
def cnn(features, spec, name, params):
    """Image [B, H, W, C] in [0, 1] → [B, dim] (tokens: the last map's cells) with stages of (Conv3×3 + BN + ReLU) × n + MaxPool.

    Args:
        params: `CnnParams`.
    """
    from mmkeras.layers.augment import RandomShift

    if params.augment:
        features = RandomShift(params.augment, name=f"{name}_augment")(features)
    return conv_stack(features, name, params)
