"""`transformer`: token embeddings + learned positions + Transformer blocks; the token-sequence
helpers (`embed_tokens`, `encode_tokens`) and block parameters `homogeneous`, `bow` and `text_cnn` reuse."""
from typing import ClassVar, Literal

import pydantic

from mmkeras.config.base import PositiveInt, Rate, heads_divide_dim, registered, section
from mmkeras.encoders.base import ENCODER_PARAMS, ENCODERS, Encoded, EncoderParams
from mmkeras.lazy import keras


@section
class AttentionStackParams(EncoderParams):
    """What `transformer` and `homogeneous` share: Transformer blocks of this shape.

    Args:
        dim: token and model width (divisible by `heads`).
        heads: attention heads per block.
        ff_dim: hidden width of each block's feed-forward network.
        dropout: dropout rate in the blocks and on the tokens.
    """

    dim: PositiveInt = 64
    heads: PositiveInt = 2
    ff_dim: PositiveInt = 128
    dropout: Rate = 0.1

    _heads_divide_dim = pydantic.model_validator(mode="after")(heads_divide_dim)


@registered(ENCODER_PARAMS)
class TransformerParams(AttentionStackParams):
    """`transformer`: token embeddings + learned positions + Transformer blocks + masked mean.

    Args:
        layers: number of Transformer blocks.

    Example:
        encoder: {type: transformer, dim: 128, heads: 4, layers: 2}
    """

    modalities: ClassVar[tuple] = ("text",)
    type: Literal["transformer"] = "transformer"
    layers: PositiveInt = 1


def embed_tokens(token_ids, spec, name, dim):
    """Token ids [B, T] (0 = padding) → (vectors [B, T, dim], padding mask [B, T] bool)."""
    from mmkeras.layers.transformer import PaddingMask

    vectors = keras.layers.Embedding(spec.vocab_size, dim, name=f"{name}_embedding")(token_ids)
    return vectors, PaddingMask(name=f"{name}_padding_mask")(token_ids)


def encode_tokens(tokens, mask, name, params, *, blocks, share_weights=False):
    """Tokens [B, N, dim] → positions → `blocks` TransformerBlocks → masked mean → `Encoded`
    (the mean [B, dim]; the normalised tokens [B, N, dim] and `mask`).

    Args:
        mask: [B, N] bool padding mask, or None when every token is real.
        params: the blocks' shape (`AttentionStackParams`: dim, heads, ff_dim, dropout).
        share_weights: apply ONE block `blocks` times (ALBERT-style), so the parameter
            count does not grow with depth.
    """
    from mmkeras.layers.transformer import MaskedMeanPooling, PositionEmbedding, TransformerBlock

    length, dim = tokens.shape[1], tokens.shape[2]
    x = PositionEmbedding(length, dim, name=f"{name}_positions")(tokens)
    x = keras.layers.Dropout(params.dropout, name=f"{name}_token_dropout")(x)

    def new_block(suffix):
        return TransformerBlock(dim, params.heads, params.ff_dim, params.dropout, name=f"{name}_block{suffix}")

    stack = [new_block("")] * blocks if share_weights else [new_block(i) for i in range(1, blocks + 1)]
    for block in stack:
        x = block(x, padding_mask=mask)
    # Pre-LN blocks leave the residual stream un-normalised: normalise once before pooling.
    x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_final_norm")(x)
    return Encoded(MaskedMeanPooling(name=f"{name}_pool")(x, padding_mask=mask), x, mask)


@ENCODERS.register("transformer")
def transformer(features, spec, name, params):
    """Token ids [B, T] → [B, dim]: embedding + learned positions + Transformer blocks + mean over real tokens.

    Args:
        params: `TransformerParams`.
    """
    tokens, mask = embed_tokens(features, spec, name, params.dim)
    return encode_tokens(tokens, mask, name, params, blocks=params.layers)
