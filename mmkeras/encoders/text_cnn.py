"""`text_cnn`: parallel 1-D convolutions over token embeddings (Kim 2014), max-pooled."""
import tf_keras as keras

from mmkeras.encoders import ENCODERS, Encoded
from mmkeras.encoders.text_transformer import embed_tokens
from mmkeras.layers.transformer import MaskedMaxPooling


@ENCODERS.register("text_cnn")
def text_cnn(features, spec, name, params):
    """Token ids [B, T] → [B, dim]: one Conv1D per n-gram width over the embeddings, each
    max-pooled over the real tokens, concatenated and projected. Its tokens are the n-gram
    features at each position (every width's, concatenated), padding masked.

    Sees short word order (n-grams) like a transformer, at the cost of a bag of words
    (the layout of Ludwig's default `parallel_cnn` text encoder).

    Args:
        params: `mmkeras.config.encoders.TextCnnParams`.
    """
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
