"""`conv1d`: the CNN conv stack along time, for [samples, channels] traces (`timeseries`)."""
import dataclasses
from typing import Annotated, ClassVar, Literal

from mmkeras.config.base import NonEmpty, PositiveInt, registered
from mmkeras.encoders.base import ENCODER_PARAMS, ENCODERS
from mmkeras.encoders.cnn import ConvStackParams, conv_stack
from mmkeras.lazy import keras


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


@ENCODERS.register("conv1d")
def conv1d(features, spec, name, params):
    """Trace [B, T, C] (standardised) → [B, dim]; tokens: the last map's time steps with their positions.

    The trace runs through `conv_stack` as a [T, 1] image with C channels, with
    kernel_size×1 convolutions and 2×1 pools: the same builtin Conv2D/MaxPool ops as the
    image CNN, so TFLite and int8 need no 1-D kernels or reshapes between stages.

    Args:
        params: `Conv1dParams`.
    """
    x = keras.layers.Reshape((features.shape[1], 1, features.shape[2]), name=f"{name}_as_image")(features)
    return conv_stack(x, name, params, kernel=(params.kernel_size, 1), pool=(2, 1))
