"""`cnn`: a small VGG-style image encoder; its conv stack is shared with `audio_cnn`."""
import tf_keras as keras

from mmkeras.encoders import ENCODERS
from mmkeras.errors import ConfigError
from mmkeras.layers.augment import RandomShift

# Keras' default 0.99 needs hundreds of steps before the moving statistics used at
# inference match the batch statistics; small data sets give a few dozen steps per
# epoch, and validation swung between 20% and 40% on the demo's image head.
BN_MOMENTUM = 0.9


POOLINGS = ("average", "flatten")


def conv_stack(x, name, filters, convs_per_stage, dropout, dim, pooling="average"):
    """Conv stages → pooling → dropout → Dense(dim); the body of every CNN encoder.

    `pooling`: "average" (global average pool: position-free, few weights) or "flatten"
    (every cell of the last feature map feeds the projection, so where a feature sits
    reaches the embedding: strokes of a digit, parts of a spectrogram).

    Only Conv2D, BatchNorm (folded at export), ReLU, MaxPool, mean and Dense, so int8
    TFLite conversion needs no special ops.
    """
    for stage, stage_filters in enumerate(filters, start=1):
        for conv in range(1, convs_per_stage + 1):
            prefix = f"{name}_stage{stage}_conv{conv}"
            # No bias: the BatchNorm right after supplies the offset.
            x = keras.layers.Conv2D(stage_filters, 3, padding="same", use_bias=False, name=prefix)(x)
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{prefix}_bn")(x)
            x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
        # "same" pooling rounds up, so inputs smaller than 2**stages never shrink to zero.
        x = keras.layers.MaxPool2D(padding="same", name=f"{name}_stage{stage}_pool")(x)
    if pooling not in POOLINGS:
        raise ConfigError(f"inputs.{name}.encoder.pooling: expected one of {', '.join(POOLINGS)}, got {pooling!r}")
    if pooling == "flatten":
        x = keras.layers.Flatten(name=f"{name}_pool")(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return keras.layers.Dense(dim, name=f"{name}_projection")(x)


@ENCODERS.register("cnn")
def cnn(features, spec, name, *, filters=(16, 32, 64), convs_per_stage=1, dim=128, dropout=0.0,
        pooling="average", augment=0.0):
    """Image [B, H, W, C] in [0, 1] → [B, dim] with stages of (Conv3×3 + BN + ReLU) × n + MaxPool.

    Args:
        filters: output channels of each stage; one stage per entry, each halves H and W.
        convs_per_stage: conv layers per stage.
        dim: size of the output embedding.
        dropout: dropout rate before the projection.
        pooling: "average" or "flatten" (see `conv_stack`).
        augment: > 0 shifts training images by up to this fraction of their size (`RandomShift`).

    Example:
        encoder: {type: cnn, filters: [16, 32], dim: 64}
    """
    if augment:
        features = RandomShift(augment, name=f"{name}_augment")(features)
    return conv_stack(features, name, filters, convs_per_stage, dropout, dim, pooling)
