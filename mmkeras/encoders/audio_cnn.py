"""`audio_cnn`: the image CNN applied to the log-mel spectrogram as a 1-channel image."""
import tf_keras as keras

from mmkeras.encoders import ENCODERS
from mmkeras.encoders.image_cnn import BN_MOMENTUM, conv_stack
from mmkeras.layers.augment import SpecAugment, UtteranceNorm


@ENCODERS.register("audio_cnn")
def audio_cnn(features, spec, name, params):
    """Log-mel [B, frames, n_mels] → [B, dim].

    Log-mel values are roughly in [-14, 5] with a different level per band. `normalize`:
    "batch" standardises each band with statistics learned over the training set
    (BatchNorm over the mel axis); "utterance" normalises each clip by its own statistics
    first (`UtteranceNorm`), so an unseen voice, microphone or loudness is brought to the
    same scale.

    Args:
        params: `mmkeras.config.encoders.AudioCnnParams`.
    """
    x = features
    if params.normalize == "utterance":
        x = UtteranceNorm(name=f"{name}_utterance_norm")(x)
    if params.spec_augment:
        x = SpecAugment(name=f"{name}_spec_augment")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_input_norm")(x)
    x = keras.layers.Reshape((*features.shape[1:], 1), name=f"{name}_as_image")(x)
    return conv_stack(x, name, params)
