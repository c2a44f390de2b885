"""Text inputs: a WordPiece vocabulary learned from the training split, tokenised in-graph.

Normalisation matches what `bert_vocab_from_dataset(lower_case=True)` learned on:
case folding, NFD, accents stripped. The tokenizer is tensorflow-text's
FastWordpieceTokenizer with BERT-style pre-tokenisation (whitespace and
punctuation), so the same ops run in tf.data and in the serving signature.
"""
import os
from typing import Annotated, Literal

from annotated_types import Ge

from mmkeras.config.base import Int, PositiveInt, Rate, section
from mmkeras.encoders import default_encoder, encoder_choice
from mmkeras.io import atomic_write_text
from mmkeras.lazy import tf, tf_text
from mmkeras.modalities.base import InputConfig, Modality, register
from mmkeras.names import vocab_file


@section
class TextInput(InputConfig):
    """A string, tokenised in-graph with a WordPiece vocabulary learned from the training split."""

    type: Literal["text"] = "text"
    max_tokens: PositiveInt = 32
    vocab_size: Annotated[Int, Ge(10)] = 2000
    # `text_cnn` was the best or within a point of the best of transformer / bow / text_cnn on
    # all five text sets of the quality suite (bench/quality; README "Quality"): bow lost 26 F1
    # points on long descriptions, the transformer 4-12 points on short names and synopses.
    encoder: encoder_choice("text") = default_encoder("text_cnn")
    # Training only: each token becomes [UNK] with this probability (`TokenDropout`).
    token_dropout: Rate = 0.0
    # A text none of whose words the vocabulary holds whole (only word pieces and [UNK]):
    # `absent` fuses the record as if the text were missing (`KnownWordPresence`), `encode`
    # encodes its pieces like any text.
    unknown_text: Literal["absent", "encode"] = "absent"

PAD, UNK = "[PAD]", "[UNK]"  # id 0 is padding: encoders mask it out


def normalize_text(text):
    text = tf_text.case_fold_utf8(text)
    text = tf_text.normalize_utf8(text, "NFD")
    return tf.strings.regex_replace(text, r"\p{Mn}", "")


def learn_vocab(texts, vocab_size):
    """Learn a WordPiece vocabulary (reserved tokens first) from an iterable of strings."""
    from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset

    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), tf.string)).batch(1024)
    vocab = bert_vocab_from_dataset.bert_vocab_from_dataset(
        dataset,
        vocab_size=vocab_size,
        reserved_tokens=[PAD, UNK],
        bert_tokenizer_params={"lower_case": True},
        # The default lower_thresh=10 keeps every word seen < 10 times out of the vocabulary
        # (the demo's 1.5k records learned 470 of 2000 tokens); 2 lets any repeated word in.
        learn_params={"lower_thresh": 2},
    )
    return list(vocab)[:vocab_size]


class Tokenizer:
    """Strings → int32 ids [..., max_tokens], 0-padded and truncated.

    Args:
        vocab: list of WordPiece tokens, `[PAD]` first and `[UNK]` second.
        max_tokens: output length.

    Attributes:
        wordpiece: the tf.Module (its vocabulary table) a SavedModel that tokenises must track.
    """

    def __init__(self, vocab, max_tokens):
        self.max_tokens = max_tokens
        self.wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=vocab, token_out_type=tf.int32, unknown_token=UNK,
            no_pretokenization=False, support_detokenization=False)

    def __call__(self, texts):
        texts = tf.convert_to_tensor(texts, tf.string)
        scalar = texts.shape.rank == 0  # tf.data maps one record at a time
        ids = self.wordpiece.tokenize(normalize_text(tf.reshape(texts, [-1])))
        ids = ids.to_tensor(default_value=0, shape=[None, self.max_tokens])
        return ids[0] if scalar else ids


@register
class TextModality(Modality):
    config = TextInput
    input_dtype = "int32"

    def fit(self, values):
        self.state = {"vocab": learn_vocab(values, self.cfg.vocab_size)}

    def state_to_json(self, run_dir):
        relative = os.path.join("vocab", f"{self.name}.txt")
        save_vocab(self.state["vocab"], os.path.join(run_dir, relative))
        return {"vocab_file": relative}

    def state_from_json(self, data, run_dir):
        self.state = {"vocab": load_vocab(os.path.join(run_dir, data["vocab_file"]))}

    @property
    def vocab_size(self):
        return len(self.state["vocab"])

    @property
    def tokenizer(self):
        if not hasattr(self, "_tokenizer"):
            # Built eagerly even when first used inside a tf.data trace, so every
            # pipeline and signature shares one tokenizer instead of graph-local copies.
            with tf.init_scope():
                self._tokenizer = Tokenizer(self.state["vocab"], self.cfg.max_tokens)
        return self._tokenizer

    def feature_shape(self):
        return (self.cfg.max_tokens,)

    def preprocess(self, x):
        if not self.cfg.token_dropout:
            return x
        from mmkeras.layers.augment import TokenDropout

        return TokenDropout(self.cfg.token_dropout, self.state["vocab"].index(UNK),
                            name=f"{self.name}_token_dropout")(x)

    def present(self, x, presence):
        if self.cfg.unknown_text == "encode":
            return presence
        from mmkeras.layers.known_words import KnownWordPresence, word_flags

        vocab = self.state["vocab"]
        return KnownWordPresence(len(vocab), word_flags(vocab, (PAD, UNK)),
                                 name=f"{self.name}_known_words")([x, presence])

    def feature_spec(self):
        from mmkeras.encoders import FeatureSpec

        return FeatureSpec(modality="text", vocab_size=self.vocab_size)

    def decode(self, text):
        return self.tokenizer(text)

    def from_raw(self, raw):
        return self.tokenizer(raw)

    def serving_resources(self):
        return [self.tokenizer.wordpiece]

    @staticmethod
    def tokens(features, spec, name, dim, params):
        """Token embeddings, padding masked."""
        from mmkeras.encoders.transformer import embed_tokens

        tokens, mask = embed_tokens(features, spec, name, dim)
        return tokens, mask, None

    def app_preprocessing(self):
        vocab = self.state["vocab"]
        return {
            "normalize": ["Unicode case folding (lower-casing)", "NFD", "strip accents: drop category Mn characters"],
            "split": "BERT-style: on whitespace, and every punctuation character is its own word",
            "wordpiece": {"algorithm": "greedy longest-match-first per word", "continuation_prefix": "##",
                          "unknown": f"a word that cannot be split into vocabulary pieces, or longer than 100 "
                                     f"bytes, becomes one {UNK}"},
            "pad_id": vocab.index(PAD), "unk_id": vocab.index(UNK), "max_tokens": self.cfg.max_tokens,
            "length": "truncate to max_tokens, then pad with pad_id at the end",
            "values": "int32 token ids (no [CLS]/[SEP])",
            "vocab": list(vocab),
        }

    def tflite_metadata(self, lib, name, described, detail):
        vocab = self.state["vocab"]
        md = lib.info.TensorMd(
            name=name, description=f"{self.name}: int32 WordPiece ids of the lower-cased, accent-stripped text "
                                   f"(BERT-style split), truncated or padded with id {vocab.index(PAD)} to "
                                   f"{self.cfg.max_tokens}; unknown words id {vocab.index(UNK)}; no [CLS]/[SEP].",
            associated_files=[lib.info.AssociatedFileMd(
                vocab_file(self.name), "WordPiece vocabulary: line n is token id n ('##' continues a word)",
                lib.fb.AssociatedFileType.VOCABULARY)])
        return md.create_metadata(), {vocab_file(self.name): "".join(f"{token}\n" for token in vocab).encode("utf-8")}


def save_vocab(vocab, path):
    atomic_write_text(path, "\n".join(vocab) + "\n")


def load_vocab(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()
