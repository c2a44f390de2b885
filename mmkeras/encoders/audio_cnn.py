"""`audio_cnn`: the CNN conv stack over the log-mel spectrogram, along time (default) or as an image."""
import dataclasses
from typing import Annotated, ClassVar, Literal

from mmkeras.config.base import Bool, NonEmpty, PositiveInt, registered
from mmkeras.encoders.base import ENCODER_PARAMS, ENCODERS
from mmkeras.encoders.cnn import BN_MOMENTUM, ConvStackParams, conv_stack
from mmkeras.lazy import keras


@registered(ENCODER_PARAMS)
class AudioCnnParams(ConvStackParams):
    """`audio_cnn`: the conv stack over the log-mel spectrogram.

    Args:
        normalize: "utterance" divides each clip's log-mel, minus its per-band mean over time,
            by its standard deviation (an unseen voice, microphone or level looks like the
            trained ones); "batch" uses learned per-band statistics only.
        spec_augment: mask random time and mel bands in training (`SpecAugment`).
        convolve: "time" slides `kernel_size`×1 kernels along time with the mel bands as
            channels (a temporal CNN, as TC-ResNet, Choi et al. 2019); "time_frequency"
            slides 3×3 kernels over the spectrogram as a 1-channel image. "time" was far more
            accurate on unseen voices where speech carries the label (spoken_commands +18,
            digits_av +5 points), level on the demo, and faster to train (README "Quality").
        kernel_size: frames each "time" convolution spans.

    Example:
        encoder: {type: audio_cnn, convolve: time_frequency, filters: [16, 32, 64], dim: 64}
    """

    modalities: ClassVar[tuple] = ("audio",)
    type: Literal["audio_cnn"] = "audio_cnn"
    # Wider than the image CNN's: along time the first stage sees all mel bands at once.
    filters: Annotated[list[PositiveInt], NonEmpty] = dataclasses.field(default_factory=lambda: [32, 64, 128])
    normalize: Literal["batch", "utterance"] = "utterance"
    spec_augment: Bool = False
    convolve: Literal["time", "time_frequency"] = "time"
    kernel_size: PositiveInt = 5


@ENCODERS.register("audio_cnn")
def audio_cnn(features, spec, name, params):
    """Log-mel [B, frames, n_mels] → [B, dim]; tokens: the last map's cells (time steps, or time × mel).

    Log-mel values are roughly in [-14, 5] with a different level per band. `normalize`:
    "batch" standardises each band with statistics learned over the training set
    (BatchNorm over the mel axis); "utterance" normalises each clip by its own statistics
    first (`UtteranceNorm`), so an unseen voice, microphone or loudness is brought to the
    same scale.

    Args:
        params: `AudioCnnParams`.
    """
    from mmkeras.layers.augment import SpecAugment, UtteranceNorm

    x = features
    if params.normalize == "utterance":
        x = UtteranceNorm(name=f"{name}_utterance_norm")(x)
    if params.spec_augment:
        x = SpecAugment(name=f"{name}_spec_augment")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_input_norm")(x)
    frames, mels = features.shape[1:]
    if params.convolve == "time":
        x = keras.layers.Reshape((frames, 1, mels), name=f"{name}_as_trace")(x)
        return conv_stack(x, name, params, kernel=(params.kernel_size, 1), pool=(2, 1))
    x = keras.layers.Reshape((frames, mels, 1), name=f"{name}_as_image")(x)
    return conv_stack(x, name, params)
