"""Sequence layers shared by the token-based encoders (text transformer, bag of words, homogeneous)."""
import tensorflow as tf
import tf_keras as keras


@keras.saving.register_keras_serializable(package="mmkeras")
class PaddingMask(keras.layers.Layer):
    """Boolean mask of real tokens: True where the token id is not the padding id.

    Args:
        padding_id: the id used for padding (0 for the WordPiece vocabularies mmkeras builds).

    Example:
        mask = PaddingMask()(token_ids)  # [B, T] bool
    """

    def __init__(self, padding_id=0, **kwargs):
        super().__init__(**kwargs)
        self.padding_id = padding_id

    def call(self, token_ids):
        return tf.not_equal(token_ids, tf.cast(self.padding_id, token_ids.dtype))

    def get_config(self):
        return {**super().get_config(), "padding_id": self.padding_id}


@keras.saving.register_keras_serializable(package="mmkeras")
class TransformerBlock(keras.layers.Layer):
    """Self-attention + feed-forward block with residuals and layer norm.

    Args:
        dim: width of the token vectors (input and output).
        heads: number of attention heads; `dim` must be divisible by it.
        ff_dim: hidden width of the feed-forward network.
        dropout: dropout rate on attention weights and on both residual branches.
        norm_first: True = pre-LN (stable without warm-up, the default),
            False = post-LN (original Transformer).

    Example:
        block = TransformerBlock(dim=64, heads=2, ff_dim=128)
        y = block(x, padding_mask=mask)  # x [B, T, 64], mask [B, T] bool or 0/1
    """

    def __init__(self, dim, heads, ff_dim, dropout=0.0, norm_first=True, **kwargs):
        super().__init__(**kwargs)
        if dim % heads:
            raise ValueError(
                f"`dim` must be divisible by `heads`. Received: dim={dim}, heads={heads}"
            )
        self.dim = dim
        self.heads = heads
        self.ff_dim = ff_dim
        self.dropout = dropout
        self.norm_first = norm_first

        # === Layers ===
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=heads, key_dim=dim // heads, dropout=dropout, name="attention"
        )
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="attention_norm")
        self.ff_hidden = keras.layers.Dense(ff_dim, activation="gelu", name="ff_hidden")
        self.ff_output = keras.layers.Dense(dim, name="ff_output")
        self.ff_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="ff_norm")
        self.residual_dropout = keras.layers.Dropout(dropout)

    def _residual(self, x, norm, branch, training):
        if self.norm_first:
            return x + self.residual_dropout(branch(norm(x)), training=training)
        return norm(x + self.residual_dropout(branch(x), training=training))

    def call(self, inputs, padding_mask=None, training=None):
        attention_mask = None
        if padding_mask is not None:
            # [B, 1, S]: every query ignores padded keys (broadcast over queries, as Keras does).
            attention_mask = tf.cast(padding_mask, tf.bool)[:, tf.newaxis, :]

        def attend(h):
            return self.attention(h, h, attention_mask=attention_mask, training=training)

        def feed_forward(h):
            return self.ff_output(self.ff_hidden(h))

        x = self._residual(inputs, self.attention_norm, attend, training)
        return self._residual(x, self.ff_norm, feed_forward, training)

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "heads": self.heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
            "norm_first": self.norm_first,
        }


@keras.saving.register_keras_serializable(package="mmkeras")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned position vector to each timestep of [B, T, dim] inputs (T ≤ max_length).

    Args:
        max_length: longest sequence the layer accepts.
        dim: width of the token vectors.

    Example:
        x = PositionEmbedding(max_length=32, dim=64)(token_vectors)
    """

    def __init__(self, max_length, dim, **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length
        self.dim = dim

    def build(self, input_shape):
        self.position_embeddings = self.add_weight(
            name="embeddings",
            shape=(self.max_length, self.dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )
        super().build(input_shape)

    def call(self, inputs):
        length = inputs.shape[1] if inputs.shape[1] is not None else tf.shape(inputs)[1]
        return inputs + tf.cast(self.position_embeddings[:length], inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length, "dim": self.dim}


@keras.saving.register_keras_serializable(package="mmkeras")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean over the valid timesteps of [B, T, dim] → [B, dim]; a row with no valid step gives zeros.

    Example:
        pooled = MaskedMeanPooling()(x, padding_mask=mask)  # mask [B, T] bool or 0/1
    """

    def call(self, inputs, padding_mask=None):
        if padding_mask is None:
            return tf.reduce_mean(inputs, axis=1)
        weights = tf.cast(padding_mask, inputs.dtype)[:, :, tf.newaxis]
        total = tf.reduce_sum(inputs * weights, axis=1)
        # max(count, 1): an all-padding row gives 0 / 1 = 0 instead of 0 / 0 = NaN.
        count = tf.maximum(tf.reduce_sum(weights, axis=1), tf.cast(1.0, inputs.dtype))
        return total / count
