"""`audio_cnn`: the image CNN applied to the log-mel spectrogram as a 1-channel image."""
from typing import ClassVar, Literal

from mmkeras.config.base import Bool, registered
from mmkeras.encoders.base import ENCODER_PARAMS, ENCODERS
from mmkeras.encoders.cnn import BN_MOMENTUM, ConvStackParams, conv_stack
from mmkeras.lazy import keras


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


@ENCODERS.register("audio_cnn")
def audio_cnn(features, spec, name, params):
    """Log-mel [B, frames, n_mels] → [B, dim].

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
    x = keras.layers.Reshape((*features.shape[1:], 1), name=f"{name}_as_image")(x)
    return conv_stack(x, name, params)
