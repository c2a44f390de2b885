"""`audio_cnn`: the image CNN applied to the log-mel spectrogram as a 1-channel image."""
import tf_keras as keras

from mmkeras.encoders import ENCODERS
from mmkeras.encoders.image_cnn import BN_MOMENTUM, conv_stack


@ENCODERS.register("audio_cnn")
def audio_cnn(features, spec, name, *, filters=(16, 32, 64), convs_per_stage=1, dim=128, dropout=0.0):
    """Log-mel [B, frames, n_mels] → [B, dim].

    Log-mel values are roughly in [-14, 5] with a different level per band, so each band
    is first standardised with learned statistics (BatchNorm over the mel axis).

    Args:
        filters: output channels of each conv stage.
        convs_per_stage: conv layers per stage.
        dim: size of the output embedding.
        dropout: dropout rate before the projection.

    Example:
        encoder: {type: audio_cnn, filters: [16, 32, 64], dim: 64}
    """
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_input_norm")(features)
    x = keras.layers.Reshape((*features.shape[1:], 1), name=f"{name}_as_image")(x)
    return conv_stack(x, name, filters, convs_per_stage, dropout, dim)
