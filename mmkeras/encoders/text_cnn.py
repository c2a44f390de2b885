"""`text_cnn`: parallel 1-D convolutions over token embeddings (Kim 2014), max-pooled."""
import dataclasses
from typing import Annotated, ClassVar, Literal

from mmkeras.config.base import NonEmpty, PositiveInt, Rate, registered
from mmkeras.encoders.base import ENCODER_PARAMS, ENCODERS, Encoded, EncoderParams
from mmkeras.encoders.transformer import embed_tokens
from mmkeras.lazy import keras


@registered(ENCODER_PARAMS)
class TextCnnParams(EncoderParams):
    """`text_cnn`: one Conv1D per n-gram width over the token embeddings, max-pooled (Kim 2014).

    Args:
        dim: embedding size of tokens and of the output.
        widths: n-gram widths, one convolution each.
        filters: output channels of each convolution.
        dropout: dropout rate on the pooled features.

    Example:
        encoder: {type: text_cnn, widths: [2, 3], filters: 32}
    """

    modalities: ClassVar[tuple] = ("text",)
    type: Literal["text_cnn"] = "text_cnn"
    dim: PositiveInt = 64
    widths: Annotated[list[PositiveInt], NonEmpty] = dataclasses.field(default_factory=lambda: [2, 3, 4, 5])
    filters: PositiveInt = 64
    dropout: Rate = 0.1


@ENCODERS.register("text_cnn")
def text_cnn(features, spec, name, params):
    """Token ids [B, T] → [B, dim]: one Conv1D per n-gram width over the embeddings, each
    max-pooled over the real tokens, concatenated and projected. Its tokens are the n-gram
    features at each position (every width's, concatenated), padding masked.

    Sees short word order (n-grams) like a transformer, at the cost of a bag of words
    (the layout of Ludwig's default `parallel_cnn` text encoder).

    Args:
        params: `TextCnnParams`.
    """
    from mmkeras.layers.transformer import MaskedMaxPooling

    tokens, mask = embed_tokens(features, spec, name, params.dim)
    pooled, ngrams = [], []
    for width in params.widths:
        x = keras.layers.Conv1D(params.filters, width, padding="same", activation="relu", name=f"{name}_conv{width}")(tokens)
        ngrams.append(x)
        pooled.append(MaskedMaxPooling(name=f"{name}_pool{width}")(x, padding_mask=mask))
    x = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name=f"{name}_ngrams")(pooled)
    per_token = ngrams[0] if len(ngrams) == 1 else keras.layers.Concatenate(name=f"{name}_token_ngrams")(ngrams)
    x = keras.layers.Dropout(params.dropout, name=f"{name}_dropout")(x)
    # No bias: a text with no tokens embeds to zeros, as with the other text encoders.
    embedding = keras.layers.Dense(params.dim, use_bias=False, name=f"{name}_projection")(x)
    return Encoded(embedding, per_token, mask)
