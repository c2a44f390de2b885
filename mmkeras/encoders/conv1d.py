"""`conv1d`: the CNN conv stack along time, for [samples, channels] traces (`timeseries`)."""
import tf_keras as keras

from mmkeras.encoders import ENCODERS
from mmkeras.encoders.image_cnn import conv_stack


@ENCODERS.register("conv1d")
def conv1d(features, spec, name, params):
    """Trace [B, T, C] (standardised) → [B, dim]; tokens: the last map's time steps with their positions.

    The trace runs through `conv_stack` as a [T, 1] image with C channels, with
    kernel_size×1 convolutions and 2×1 pools: the same builtin Conv2D/MaxPool ops as the
    image CNN, so TFLite and int8 need no 1-D kernels or reshapes between stages.

    Args:
        params: `mmkeras.config.encoders.Conv1dParams`.
    """
    x = keras.layers.Reshape((features.shape[1], 1, features.shape[2]), name=f"{name}_as_image")(features)
    return conv_stack(x, name, params, kernel=(params.kernel_size, 1), pool=(2, 1))
