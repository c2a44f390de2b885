"""Sequence layers shared by the token-based encoders (text transformer, bag of words, homogeneous)."""
import tensorflow as tf
import tf_keras as keras

from mmkeras.layers.masking import masked_softmax


def sequence_length(x):
    """Length of axis 1: static when known (TFLite keeps static shapes), else dynamic."""
    return x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]


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

    Multi-head attention is written out here rather than taken from
    `keras.layers.MultiHeadAttention`: Keras adds -1e9 to masked scores, and in full-int8 TFLite
    that tensor gets a scale of ~4e6, so every real score rounds to 0 and attention turns uniform.
    Padded keys are masked with `masked_softmax` instead (a margin just below the row's scores).

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
        # Plain Dense projections (FULLY_CONNECTED in TFLite: per-channel int8 weights) with
        # reshape/transpose to heads, rather than EinsumDense.
        self.query = keras.layers.Dense(dim, name="query", dtype=self.dtype_policy)
        self.key = keras.layers.Dense(dim, name="key", dtype=self.dtype_policy)
        self.value = keras.layers.Dense(dim, name="value", dtype=self.dtype_policy)
        self.attention_output = keras.layers.Dense(dim, name="attention_output", dtype=self.dtype_policy)
        self.attention_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="attention_norm", dtype=self.dtype_policy)
        self.ff_hidden = keras.layers.Dense(ff_dim, activation="gelu", name="ff_hidden", dtype=self.dtype_policy)
        self.ff_output = keras.layers.Dense(dim, name="ff_output", dtype=self.dtype_policy)
        self.ff_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="ff_norm", dtype=self.dtype_policy)
        self.residual_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, input_shape):
        # Built here, not on first call, so a reloaded block has its weights before it is called.
        input_shape = tf.TensorShape(input_shape)
        for layer in (self.query, self.key, self.value, self.attention_output, self.ff_hidden):
            layer.build(input_shape)
        for norm in (self.attention_norm, self.ff_norm):
            norm.build(input_shape)
        self.ff_output.build(input_shape[:-1].concatenate([self.ff_dim]))
        super().build(input_shape)

    def _split_heads(self, x):
        """[B, T, dim] → [B, heads, T, dim / heads]."""
        x = tf.reshape(x, [-1, sequence_length(x), self.heads, self.dim // self.heads])
        return tf.transpose(x, [0, 2, 1, 3])

    def _attend(self, h, key_mask, training):
        depth = self.dim // self.heads
        # Scale the queries rather than the [B, heads, T, T] scores: a smaller tensor.
        query = self._split_heads(self.query(h)) * tf.cast(depth**-0.5, h.dtype)
        key = self._split_heads(self.key(h))
        value = self._split_heads(self.value(h))
        scores = tf.matmul(query, key, transpose_b=True)  # [B, heads, T_query, T_key]
        if key_mask is None:
            weights = tf.nn.softmax(scores)
        else:
            weights = masked_softmax(scores, key_mask)
        weights = self.attention_dropout(weights, training=training)
        context = tf.transpose(tf.matmul(weights, value), [0, 2, 1, 3])  # [B, T, heads, depth]
        return self.attention_output(tf.reshape(context, [-1, sequence_length(context), self.dim]))

    def _residual(self, x, norm, branch, training):
        if self.norm_first:
            return x + self.residual_dropout(branch(norm(x)), training=training)
        return norm(x + self.residual_dropout(branch(x), training=training))

    def call(self, inputs, padding_mask=None, training=None):
        key_mask = None
        if padding_mask is not None:
            # [B, 1, 1, T_key]: every head and query ignores padded keys. (expand_dims, not
            # [:, None, None]: TFLite's STRIDED_SLICE rejects two new axes on a dynamic length.)
            key_mask = tf.expand_dims(tf.expand_dims(tf.cast(padding_mask, self.compute_dtype), 1), 1)

        def attend(h):
            return self._attend(h, key_mask, training)

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
        return inputs + tf.cast(self.position_embeddings[:sequence_length(inputs)], inputs.dtype)

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


@keras.saving.register_keras_serializable(package="mmkeras")
class MaskedMaxPooling(keras.layers.Layer):
    """Max over the valid timesteps of non-negative [B, T, dim] (ReLU outputs) → [B, dim].

    Padded steps are multiplied by 0 rather than pushed to -inf: for non-negative
    inputs that is the same maximum, and it keeps the int8 scale of the tensor intact
    (the reason attention masks here are bounded too). A row with no valid step gives zeros.

    Example:
        pooled = MaskedMaxPooling()(relu_features, padding_mask=mask)
    """

    def call(self, inputs, padding_mask=None):
        if padding_mask is not None:
            inputs = inputs * tf.cast(padding_mask, inputs.dtype)[:, :, tf.newaxis]
        return tf.reduce_max(inputs, axis=1)
