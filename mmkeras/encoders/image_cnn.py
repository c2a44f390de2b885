"""`cnn`: a small VGG-style image encoder; its conv stack is shared with `audio_cnn`."""
import tf_keras as keras

from mmkeras.encoders import ENCODERS, Encoded
from mmkeras.layers.augment import RandomShift
from mmkeras.layers.tokens import GridTokens

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
        params: `mmkeras.config.encoders.CnnParams`.
    """
    if params.augment:
        features = RandomShift(params.augment, name=f"{name}_augment")(features)
    return conv_stack(features, name, params)
