"""`bow`: the mean of the token embeddings, ignoring padding (a fast text baseline)."""
from typing import ClassVar, Literal

from mmkeras.config.base import PositiveInt, registered
from mmkeras.encoders.base import ENCODER_PARAMS, ENCODERS, Encoded, EncoderParams
from mmkeras.encoders.transformer import embed_tokens


@registered(ENCODER_PARAMS)
class BowParams(EncoderParams):
    """`bow`: the mean of the token embeddings, ignoring padding (a fast baseline).

    Args:
        dim: embedding size.

    Example:
        encoder: {type: bow, dim: 32}
    """

    modalities: ClassVar[tuple] = ("text",)
    type: Literal["bow"] = "bow"
    dim: PositiveInt = 64


@ENCODERS.register("bow")
def bow(features, spec, name, params):
    """Token ids [B, T] → [B, dim]: mean of the token embeddings, ignoring padding (fast baseline).

    Args:
        params: `BowParams`.
    """
    from mmkeras.layers.transformer import MaskedMeanPooling

    tokens, mask = embed_tokens(features, spec, name, params.dim)
    return Encoded(MaskedMeanPooling(name=f"{name}_pool")(tokens, padding_mask=mask), tokens, mask)
