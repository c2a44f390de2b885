"""`mlp`: a Dense stack for standardised numeric columns."""
import tf_keras as keras

from mmkeras.encoders import ENCODERS


@ENCODERS.register("mlp")
def mlp(features, spec, name, *, units=(64, 64), dropout=0.0):
    """Numeric [B, n_columns] → [B, units[-1]] through Dense + ReLU + Dropout layers.

    Args:
        units: width of each Dense layer; the last one is the embedding size.
        dropout: dropout rate after each layer.

    Example:
        encoder: {type: mlp, units: [128, 64], dropout: 0.1}
    """
    x = features
    for i, width in enumerate(units, start=1):
        x = keras.layers.Dense(width, activation="relu", name=f"{name}_dense{i}")(x)
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout{i}")(x)
    return x
