"""`audio_cnn`: the image CNN applied to the log-mel spectrogram as a 1-channel image."""
import tf_keras as keras

from mmkeras.encoders import ENCODERS
from mmkeras.encoders.image_cnn import BN_MOMENTUM, conv_stack
from mmkeras.errors import ConfigError
from mmkeras.layers.augment import SpecAugment, UtteranceNorm

NORMALIZATIONS = ("batch", "utterance")


@ENCODERS.register("audio_cnn")
def audio_cnn(features, spec, name, *, filters=(16, 32, 64), convs_per_stage=1, dim=128, dropout=0.0,
              normalize="utterance", spec_augment=False, pooling="average"):
    """Log-mel [B, frames, n_mels] → [B, dim].

    Log-mel values are roughly in [-14, 5] with a different level per band. `normalize`:
    "batch" standardises each band with statistics learned over the training set
    (BatchNorm over the mel axis); "utterance" normalises each clip by its own statistics
    first (`UtteranceNorm`), so an unseen voice, microphone or loudness is brought to the
    same scale.

    Args:
        filters: output channels of each conv stage.
        convs_per_stage: conv layers per stage.
        dim: size of the output embedding.
        dropout: dropout rate before the projection.
        normalize: "batch" or "utterance" (above).
        spec_augment: mask random time and mel bands in training (`SpecAugment`).
        pooling: "average" or "flatten" (see `conv_stack`).

    Example:
        encoder: {type: audio_cnn, filters: [16, 32, 64], dim: 64}
    """
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"inputs.{name}.encoder.normalize: expected one of {', '.join(NORMALIZATIONS)}, "
                          f"got {normalize!r}")
    x = features
    if normalize == "utterance":
        x = UtteranceNorm(name=f"{name}_utterance_norm")(x)
    if spec_augment:
        x = SpecAugment(name=f"{name}_spec_augment")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_input_norm")(x)
    x = keras.layers.Reshape((*features.shape[1:], 1), name=f"{name}_as_image")(x)
    return conv_stack(x, name, filters, convs_per_stage, dropout, dim, pooling)
