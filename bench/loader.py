"""The baseline for `pipeline_speedup`: a per-sample Python loader, as a hand-written
`Dataset.__getitem__` + collate function would decode the same records.

Per sample, in one Python thread: PIL decodes and resizes the image, soundfile
reads the audio (mmkeras's own `load_audio`, so both sides run the same decoder)
and numpy crops or pads it, a plain-Python WordPiece tokenises the text, and the
numbers become a float32 vector; a batch is `np.stack` of its samples.

The tokenizer is plain Python (BERT basic pre-tokenisation + greedy longest-match
WordPiece over the run's vocabulary), not tensorflow-text called per sample: one
eager TF call per string costs more than the whole Python tokenisation, and a fair
baseline should not be slowed by an API it would never use.

Example:
    loader = PythonLoader(split, prep.handlers, batch_size=32)
    for batch in loader.epoch(rng): ...
    loader.stage_seconds   # {"image": s, "speech": s, ...} accumulated per input, plus "collate"
"""
import time
import unicodedata

import numpy as np
from PIL import Image

from mmkeras.modalities.audio import load_audio
from mmkeras.modalities.text import PAD, UNK
from mmkeras.modalities.timeseries import load_trace
from mmkeras.names import presence_key

# === Text: plain-Python WordPiece ===

MAX_CHARS_PER_WORD = 100  # BERT's limit: longer words become [UNK]


def _is_punctuation(char):
    code = ord(char)
    # BERT treats every non-alphanumeric ASCII character as punctuation, plus Unicode P*.
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def basic_tokenize(text):
    """Case-fold, NFD, drop accents, split on whitespace and around punctuation (BERT BasicTokenizer)."""
    text = unicodedata.normalize("NFD", text.casefold())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    words = []
    for chunk in text.split():
        word = ""
        for char in chunk:
            if _is_punctuation(char):
                if word:
                    words.append(word)
                words.append(char)
                word = ""
            else:
                word += char
        if word:
            words.append(word)
    return words


class WordPiece:
    """Greedy longest-match-first WordPiece over a vocabulary with `##` continuation pieces.

    Args:
        vocab: tokens in id order (`[PAD]` = 0, `[UNK]` = 1, as mmkeras saves them).
        max_tokens: output length (0-padded, truncated).

    Example:
        WordPiece(["[PAD]", "[UNK]", "smil", "##ing"], 4).ids("Smiling")   # [2, 3, 0, 0]
    """

    def __init__(self, vocab, max_tokens):
        self.index = {token: i for i, token in enumerate(vocab)}
        self.unk = self.index[UNK]
        self.pad = self.index[PAD]
        self.max_tokens = max_tokens

    def word_ids(self, word):
        if len(word) > MAX_CHARS_PER_WORD:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.index:
                    ids.append(self.index[piece])
                    break
                end -= 1
            if end == start:  # no piece matches: the whole word is unknown
                return [self.unk]
            start = end
        return ids

    def ids(self, text):
        out = [i for word in basic_tokenize(text) for i in self.word_ids(word)][: self.max_tokens]
        return np.asarray(out + [self.pad] * (self.max_tokens - len(out)), np.int32)


# === Per-modality decoders (one sample at a time) ===


def load_image(path, cfg):
    """An image file → float32 [H, W, C] pixels in [0, 255] at the input's size."""
    with Image.open(path) as image:
        image = image.convert("RGB" if cfg.channels == 3 else "L")
        # PIL's bilinear filter widens its support when shrinking: antialiased like tf.image.resize's.
        image = image.resize((cfg.size[1], cfg.size[0]), Image.BILINEAR)
        pixels = np.asarray(image, np.float32)
    return pixels.reshape(cfg.size[0], cfg.size[1], cfg.channels)


def crop_or_pad(wave, num_samples, rng):
    """Random crop (training) or zero-pad to `num_samples`, as the pipeline's finalize does."""
    excess = len(wave) - num_samples
    if excess > 0:
        offset = rng.integers(0, excess + 1)
        return wave[offset: offset + num_samples]
    return np.pad(wave, (0, num_samples - len(wave)))


def _image(h, value, rng):
    return load_image(value, h.cfg)


def _audio(h, value, rng):
    return crop_or_pad(load_audio(value, h.cfg.sample_rate), h.cfg.num_samples, rng)


def _numeric(h, value, rng):
    return np.asarray(value, np.float32)


def _timeseries(h, value, rng):
    """mmkeras's own trace reader, then numpy: a random crop or a pad with the channel means,
    or linear interpolation (without the pipeline's antialiasing) for `fit: resample`."""
    trace, cfg = load_trace(value, h.cfg.channels), h.cfg
    if cfg.fit == "resample":
        at = np.linspace(0, len(trace) - 1, cfg.length)
        return np.stack([np.interp(at, np.arange(len(trace)), c) for c in trace.T], -1).astype(np.float32)
    if len(trace) > cfg.length:
        offset = rng.integers(0, len(trace) - cfg.length + 1)
        return trace[offset: offset + cfg.length]
    fill = np.broadcast_to(np.asarray(h.state["mean"], np.float32), (cfg.length - len(trace), cfg.channels))
    return np.concatenate([trace, fill])


# Input type → per-sample decoder (text: PythonLoader._text, which needs the input's vocabulary).
DECODERS = {"image": _image, "audio": _audio, "numeric": _numeric, "timeseries": _timeseries}


class PythonLoader:
    """Decode a validated split sample by sample and stack batches in numpy.

    Args:
        split: a validated `Split` (the records the tf.data pipeline reads).
        handlers: the fitted modality handlers (configs, text vocabularies).
        batch_size: samples per batch.
    """

    def __init__(self, split, handlers, batch_size):
        self.split, self.handlers, self.batch_size = split, handlers, batch_size
        self.wordpieces = {h.name: WordPiece(h.state["vocab"], h.cfg.max_tokens)
                           for h in handlers if h.cfg.type == "text"}
        unknown = [h.cfg.type for h in handlers if h.cfg.type != "text" and h.cfg.type not in DECODERS]
        if unknown:
            raise ValueError(f"the hand-written baseline loader has no decoder for {', '.join(unknown)} inputs")
        self.decoders = {h.name: self._text if h.cfg.type == "text" else DECODERS[h.cfg.type] for h in handlers}
        self.stage_seconds = dict.fromkeys([h.name for h in handlers] + ["collate"], 0.0)
        self.samples_decoded = 0

    def _text(self, h, value, rng):
        return self.wordpieces[h.name].ids(value)

    def ms_per_sample(self):
        """Per-stage profile: milliseconds per sample spent in each input's decoder and in collation."""
        n = max(self.samples_decoded, 1)
        return {stage: 1000 * seconds / n for stage, seconds in self.stage_seconds.items()}

    def sample(self, index, rng):
        """One record's model inputs (absent modalities as zeros), timing each decoder."""
        out = {}
        for h in self.handlers:
            start = time.perf_counter()
            present = self.split.presence[h.name][index] > 0
            value = self.split.values[h.name][index]
            out[h.name] = (self.decoders[h.name](h, value, rng) if present
                           else np.zeros(h.feature_shape(), h.input_dtype))
            out[presence_key(h.name)] = np.float32([present])
            self.stage_seconds[h.name] += time.perf_counter() - start
        self.samples_decoded += 1
        return out

    def epoch(self, rng):
        """Yield batches {input: array [B, ...]} over the split in a fresh random order."""
        order = rng.permutation(len(self.split))
        for start in range(0, len(order), self.batch_size):
            samples = [self.sample(i, rng) for i in order[start: start + self.batch_size]]
            begin = time.perf_counter()
            batch = {key: np.stack([s[key] for s in samples]) for key in samples[0]}
            self.stage_seconds["collate"] += time.perf_counter() - begin
            yield batch
