"""`mlp`: a Dense stack for standardised numeric columns, optionally on piecewise-linear bins."""
import dataclasses
from typing import Annotated, ClassVar, Literal

from mmkeras.config.base import NonEmpty, NonNegativeInt, PositiveInt, Rate, registered
from mmkeras.encoders.base import ENCODER_PARAMS, ENCODERS, Encoded, EncoderParams
from mmkeras.lazy import keras


@registered(ENCODER_PARAMS)
class MlpParams(EncoderParams):
    """`mlp`: Dense + ReLU + Dropout layers over the standardised numeric columns.

    Args:
        units: width of each Dense layer; the last one is the embedding size.
        dropout: dropout rate after each layer.
        bins: > 0 also feeds each column's piecewise-linear encoding over at most this many
            training quantile bins (`PiecewiseLinear`, Gorishniy et al. 2022).

    Example:
        encoder: {type: mlp, units: [128, 64], dropout: 0.1}
    """

    modalities: ClassVar[tuple] = ("numeric",)
    type: Literal["mlp"] = "mlp"
    units: Annotated[list[PositiveInt], NonEmpty] = dataclasses.field(default_factory=lambda: [64, 64])
    dropout: Rate = 0.0
    bins: NonNegativeInt = 16


@ENCODERS.register("mlp")
def mlp(features, spec, name, params):
    """Numeric [B, n_columns] → [B, units[-1]] through Dense + ReLU + Dropout layers.

    Its tokens are the columns, one `units[-1]`-wide vector each (`ColumnTokens` with offsets).

    Args:
        params: `MlpParams`.
    """
    from mmkeras.layers.numeric import PiecewiseLinear
    from mmkeras.layers.tokens import ColumnTokens

    x = features
    if params.bins and spec.quantiles:
        x = PiecewiseLinear.from_quantiles(spec.quantiles, params.bins, name=f"{name}_bins")(x)
    for i, width in enumerate(params.units, start=1):
        x = keras.layers.Dense(width, activation="relu", name=f"{name}_dense{i}")(x)
        x = keras.layers.Dropout(params.dropout, name=f"{name}_dropout{i}")(x)
    return Encoded(x, ColumnTokens(params.units[-1], offsets=True, name=f"{name}_column_tokens")(features))
