"""A text with no word the vocabulary knows counts as absent."""
import numpy as np
import tensorflow as tf
import tf_keras as keras


def word_flags(vocab, reserved):
    """float32 [len(vocab)]: 1 for a token that starts a word and holds a letter or digit (not
    `reserved`, not punctuation), -1 for a "##" continuation, 0 otherwise. One column, not two
    flags: the table is a constant in every exported file (8 KB float32 for 2000 tokens)."""
    flags = np.zeros(len(vocab), np.float32)
    for i, token in enumerate(vocab):
        if token in reserved:
            continue
        if token.startswith("##"):
            flags[i] = -1.0
        elif any(c.isalnum() for c in token):
            flags[i] = 1.0
    return flags


@keras.saving.register_keras_serializable(package="mmkeras")
class KnownWordPresence(keras.layers.Layer):
    """(WordPiece ids [B, T], presence [B, 1]) → presence, 0 where the text holds no known word.

    A known word is one the vocabulary holds whole: a word-start token not followed by a "##"
    continuation. A word the vocabulary never saw still tokenises, into pieces ("kolumbia" →
    "kol ##umb ##ia"), and a short text made only of such pieces (a new item's name, a language
    absent from training) gives the encoder features that look like the training texts the
    pieces came from. Counted as absent, the record is predicted by the other inputs through
    the path modality dropout trains. Measured on the quality suite's unseen items and
    languages (README "Quality"). Builtin ops only (GATHER, STRIDED_SLICE, CONCATENATION, MUL, SUB,
    REDUCE_MAX), in the model, so every exported variant applies the same rule. A word cut
    by `max_tokens` after its first piece counts as whole: the ids do not show what followed.

    Args:
        vocab_size: rows of the flag table.
        flags: `word_flags` of the vocabulary; None when loading (the table is a saved weight).

    Example:
        presence = KnownWordPresence(len(vocab), word_flags(vocab, ("[PAD]", "[UNK]")))([ids, presence])
    """

    def __init__(self, vocab_size, flags=None, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self._initial_flags = flags

    def build(self, input_shape):
        initial = self._initial_flags
        self.flags = self.add_weight(
            name="word_flags", shape=(self.vocab_size,), trainable=False,
            initializer=keras.initializers.Constant(initial) if initial is not None else "zeros")
        super().build(input_shape)

    def call(self, inputs):
        ids, presence = inputs
        # Two non-negative tables, each gathered, rather than one gather split after: in full int8 the
        # converter fused the RELU of the starts into the gathered flags' quantisation (range [0, 1]),
        # which clamped the -1s the continuations were read from, so every word counted as known
        # (emoji_vendors: int8 agreed with Keras on 52% of its unknown-word texts, -3.8 points).
        starts = tf.gather(tf.nn.relu(self.flags), ids)  # [B, T]
        continued = tf.gather(tf.nn.relu(-self.flags), ids)
        next_continued = tf.concat([continued[:, 1:], tf.zeros_like(continued[:, :1])], axis=1)
        known = tf.reduce_max(starts * (1.0 - next_continued), axis=1, keepdims=True)
        return presence * tf.cast(known, presence.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[1]

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size}
