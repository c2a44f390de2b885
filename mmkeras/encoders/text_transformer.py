"""`transformer` and `bow` text encoders, plus the token-sequence helpers `homogeneous` reuses."""
import tf_keras as keras

from mmkeras.encoders import ENCODERS, Encoded
from mmkeras.layers.transformer import MaskedMeanPooling, PaddingMask, PositionEmbedding, TransformerBlock


def embed_tokens(token_ids, spec, name, dim):
    """Token ids [B, T] (0 = padding) → (vectors [B, T, dim], padding mask [B, T] bool)."""
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
        params: `mmkeras.config.encoders.TransformerParams`.
    """
    tokens, mask = embed_tokens(features, spec, name, params.dim)
    return encode_tokens(tokens, mask, name, params, blocks=params.layers)


@ENCODERS.register("bow")
def bow(features, spec, name, params):
    """Token ids [B, T] → [B, dim]: mean of the token embeddings, ignoring padding (fast baseline).

    Args:
        params: `mmkeras.config.encoders.BowParams`.
    """
    tokens, mask = embed_tokens(features, spec, name, params.dim)
    return Encoded(MaskedMeanPooling(name=f"{name}_pool")(tokens, padding_mask=mask), tokens, mask)
