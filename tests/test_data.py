"""Manifests, per-modality decoding, bad records and the tf.data pipeline."""
import json
import os

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from conftest import CLASSES, tiny_config_dict, write_jsonl
from mmkeras.config import config_from_dict
from mmkeras.modalities.audio import load_audio
from mmkeras.data.pipeline import make_dataset
from mmkeras.names import presence_key
from mmkeras.data.preprocessing import Preprocessing, load_splits
from mmkeras.data.records import BadRecordLog
from mmkeras.modalities.text import Tokenizer, learn_vocab
from mmkeras.errors import DataError
from mmkeras.heads import head_targets


@pytest.fixture(scope="module")
def cfg(tiny_data):
    return config_from_dict(tiny_config_dict(tiny_data))


@pytest.fixture(scope="module")
def prepared(cfg):
    splits = load_splits(cfg, BadRecordLog("error"))
    return splits, Preprocessing.fit(cfg, splits["train"])


def test_splits_read_every_record_and_fit_state(prepared):
    splits, prep = prepared
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [48, 18, 18]
    assert prep.labels == {"label": sorted(CLASSES)}
    vocab = prep.handlers[1].state["vocab"]
    assert vocab[:2] == ["[PAD]", "[UNK]"] and "whale" in vocab
    stats = prep.handlers[3].state
    assert len(stats["mean"]) == 2 and stats["mean"][0] == pytest.approx(1.0, abs=0.2)


def test_pipeline_batches_have_model_shapes(cfg, prepared):
    splits, prep = prepared
    targets = head_targets(splits["test"], cfg, prep.labels)
    ds = make_dataset(splits["test"], prep.handlers, cfg.data, 8, training=False, targets=targets)
    x, y = next(iter(ds))
    assert x["image"].shape == (8, 16, 16, 3) and x["image"].dtype == tf.float32
    assert float(tf.reduce_max(x["image"])) > 100  # pixels in [0, 255]; the model rescales
    assert x["text"].shape == (8, 6) and x["text"].dtype == tf.int32
    assert x["speech"].shape == (8, 4000)
    assert x["stats"].shape == (8, 2)
    assert x[presence_key("image")].shape == (8, 1)
    assert y["label"].numpy().tolist() == [sorted(CLASSES).index(c) for c in (CLASSES * 3)[:8]]


def test_csv_manifest_equals_jsonl(tiny_data, tmp_path):
    import csv

    rows = [json.loads(line) for line in open(os.path.join(tiny_data, "train.jsonl"))]
    csv_path = os.path.join(tiny_data, "train_copy.csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    raw = tiny_config_dict(tiny_data)
    raw["data"] = {"train": csv_path}
    cfg_csv = config_from_dict(raw)
    splits = load_splits(cfg_csv, BadRecordLog("error"))
    assert len(splits["train"]) + len(splits["validation"]) == 48  # validation held out of train
    all_text = splits["train"].values["text"] + splits["validation"].values["text"]
    assert sorted(all_text) == sorted(r["text"] for r in rows)


def test_bad_records_are_skipped_and_listed(tiny_data, tmp_path):
    good = json.loads(open(os.path.join(tiny_data, "train.jsonl")).readline())
    rows = [good, {**good, "image": "img/missing.png"}, {**good, "x1": "abc"}, {**good, "image": "../../etc/passwd"},
            {**good, "label": ""}]
    manifest = os.path.join(tiny_data, "bad.jsonl")
    write_jsonl(manifest, rows)
    with open(manifest, "a") as f:
        f.write("{not json\n")
    raw = tiny_config_dict(tiny_data)
    raw["data"]["train"] = manifest
    cfg = config_from_dict(raw)
    log = BadRecordLog("skip")
    from mmkeras.modalities.base import handler
    from mmkeras.data.records import load_split

    split = load_split(manifest, [handler(i) for i in cfg.inputs], cfg.outputs, log)
    assert len(split) == 1
    got = [(e["line"], e["column"]) for e in log.entries]
    assert got == [(2, "image"), (3, "x1"), (4, "image"), (5, "label"), (6, None)]
    reasons = [e["reason"] for e in log.entries]
    assert "file not found" in reasons[0] and "not a number: 'abc'" in reasons[1]
    assert "escapes the manifest's folder" in reasons[2] and reasons[3] == "empty label"
    assert reasons[4].startswith("invalid JSON")
    log.write(str(tmp_path / "bad_records.jsonl"))
    assert len(open(tmp_path / "bad_records.jsonl").readlines()) == 5

    with pytest.raises(DataError, match=r"bad.jsonl:2, column 'image': file not found: .*missing.png"):
        load_split(manifest, [handler(i) for i in cfg.inputs], cfg.outputs, BadRecordLog("error"))


def test_silently_wrong_and_hostile_manifest_values_are_listed_bad_records(tiny_data, tmp_path):
    """Values that used to pass as something else, or crash the reader, are each one listed skip."""
    from mmkeras.data.manifest import MAX_JSON_DEPTH
    from mmkeras.modalities.base import handler
    from mmkeras.data.records import load_split

    good = json.loads(open(os.path.join(tiny_data, "train.jsonl")).readline())
    lines = [json.dumps(good),
             json.dumps({**good, "x1": True}),                 # a boolean is no measurement
             json.dumps({**good, "x1": 1e39}),                 # finite in Python, infinite in float32
             json.dumps({**good, "label": "   "}),             # whitespace is no label
             json.dumps({**good, "label": ["red", "blue"]}),   # a list given to a category output
             json.dumps({**good, "score": False}),             # a boolean numeric target
             json.dumps({**good, "deep": [[[]]]})[:-1] + ', "x": ' + "[" * (MAX_JSON_DEPTH + 5) + "]" * (MAX_JSON_DEPTH + 5) + "}",
             json.dumps(good)[:-1] + ', "big": ' + "9" * 5000 + "}",  # over Python's int-digits limit
             json.dumps({**good, "x1": 10 ** 400}),            # an integer float() cannot take
             json.dumps({**good, "image": "img/0.png\x00x"}),  # a file name no file system takes
             json.dumps({**good, "text": "sea \ud800 sky"}),   # valid JSON, not Unicode text
             json.dumps({**good, "text": "sea \U0001F30A sky"}),  # an escaped surrogate pair is fine
             ]
    manifest = os.path.join(tiny_data, "hostile.jsonl")
    with open(manifest, "wb") as f:
        f.write(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n\xff\xfe not utf-8\n")  # a BOM on line 1
    raw = tiny_config_dict(tiny_data)
    raw["outputs"].append({"name": "score", "type": "numeric"})
    cfg = config_from_dict(raw)
    log = BadRecordLog("skip")
    split = load_split(manifest, [handler(i) for i in cfg.inputs], cfg.outputs, log)
    assert split.lines == [1, 12]  # the BOM line and the emoji are good records
    reasons = {e["line"]: e["reason"] for e in log.entries}
    assert sorted(reasons) == list(range(2, 12)) + [13], reasons
    assert reasons[2] == "column 'x1': not a number: True"
    assert reasons[3].startswith("column 'x1': outside the float32 range")
    assert reasons[4] == "empty label"
    assert reasons[5] == "expected one label name, got a JSON list" and reasons[6] == "not a number: False"
    assert reasons[7] == f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    assert reasons[8].startswith("invalid JSON: Exceeds the limit")
    assert reasons[9].startswith("column 'x1': outside the float32 range")
    assert reasons[10] == "file name holds a NUL character: 'img/0.png\\x00x'"
    assert reasons[11].startswith("a string holds a lone surrogate escape")
    assert reasons[13].startswith("not UTF-8 text")


def test_csv_bom_long_fields_and_bytes_that_are_not_utf8(tmp_path):
    from mmkeras.data.manifest import MAX_FIELD_BYTES, read_manifest

    path = tmp_path / "m.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\nhello,a\n")
    assert list(read_manifest(str(path))) == [(2, {"text": "hello", "label": "a"})]  # not "\ufefftext"
    path.write_text("text,label\n" + "x" * (200 * 1024) + ",a\n")  # over csv's own 128 KiB limit
    assert list(read_manifest(str(path)))[0][1]["label"] == "a"
    path.write_text("text,label\n" + "x" * (MAX_FIELD_BYTES + 1) + ",a\n")
    with pytest.raises(DataError, match=r"m.csv: line \d+: unreadable CSV: field larger than field limit"):
        list(read_manifest(str(path)))
    path.write_bytes(b"text,label\ncaf\xe9,a\n")  # Latin-1
    with pytest.raises(DataError, match=r"m.csv: not UTF-8 text; save the file as UTF-8"):
        list(read_manifest(str(path)))


def test_corrupt_truncated_and_unsupported_files_are_bad_records(tiny_data, tmp_path):
    from PIL import Image

    good = json.loads(open(os.path.join(tiny_data, "train.jsonl")).readline())
    png = open(os.path.join(tiny_data, good["image"]), "rb").read()
    folder = tmp_path
    (folder / "img").mkdir()
    (folder / "img" / "garbage.png").write_bytes(b"this is not an image")
    (folder / "img" / "truncated.png").write_bytes(png[: len(png) // 2])
    Image.new("RGB", (8, 8)).save(folder / "img" / "pic.webp")
    Image.new("1", (8, 8)).save(folder / "img" / "onebit.bmp")  # PIL reads it, TensorFlow does not
    (folder / "wav").mkdir()
    (folder / "wav" / "noise.wav").write_bytes(b"RIFF????WAVEjunk")
    wav = open(os.path.join(tiny_data, good["audio"]), "rb").read()
    (folder / "wav" / "cut.wav").write_bytes(wav[:30])  # header cut short
    import shutil

    shutil.copy(os.path.join(tiny_data, good["image"]), folder / "img" / "ok.png")
    shutil.copy(os.path.join(tiny_data, good["audio"]), folder / "wav" / "ok.wav")
    ok = {**good, "image": "img/ok.png", "audio": "wav/ok.wav"}
    rows = [ok, {**ok, "image": "img/garbage.png"}, {**ok, "image": "img/truncated.png"},
            {**ok, "image": "img/onebit.bmp"}, {**ok, "image": "img/pic.webp"}, {**ok, "audio": "wav/noise.wav"},
            {**ok, "audio": "wav/cut.wav"}, ok]
    manifest = str(folder / "m.jsonl")
    write_jsonl(manifest, rows)
    raw = tiny_config_dict(tiny_data)
    from mmkeras.modalities.base import handler
    from mmkeras.data.records import load_split

    log = BadRecordLog("skip")
    split = load_split(manifest, [handler(i) for i in config_from_dict(raw).inputs], config_from_dict(raw).outputs, log)
    assert split.lines == [1, 8]
    got = [(e["line"], e["column"], e["reason"].split(":")[0]) for e in log.entries]
    # In line order, although the pixels are decoded in one batched pass after the per-record checks.
    assert got == [(2, "image", "not a readable image"), (3, "image", "not a readable image"),
                   (4, "image", "TensorFlow cannot decode this image as 3-channel"),
                   (5, "image", "unsupported image format WEBP (use PNG, JPEG, GIF or BMP)"),
                   (6, "audio", "not a readable audio file"), (7, "audio", "not a readable audio file")]
    assert log.entries[1]["value"] == "img/truncated.png"


def test_optional_modality_absent_gives_zeros_and_presence_zero(tiny_data):
    good = [json.loads(line) for line in open(os.path.join(tiny_data, "train.jsonl"))][:6]
    for r in good[::2]:
        r["image"] = ""
        r.pop("audio")
    manifest = os.path.join(tiny_data, "optional.jsonl")
    write_jsonl(manifest, good)
    raw = tiny_config_dict(tiny_data)
    raw["data"] = {"train": manifest, "validation": manifest}
    raw["inputs"][0]["optional"] = True
    raw["inputs"][2]["optional"] = True
    cfg = config_from_dict(raw)
    splits = load_splits(cfg, BadRecordLog("error"))
    prep = Preprocessing.fit(cfg, splits["train"])
    ds = make_dataset(splits["validation"], prep.handlers, cfg.data, 6, training=False)
    (x,) = next(iter(ds))
    assert x[presence_key("image")].numpy().ravel().tolist() == [0, 1, 0, 1, 0, 1]
    assert float(tf.reduce_max(tf.abs(x["image"][0]))) == 0 and float(tf.reduce_max(x["image"][1])) > 0
    assert float(tf.reduce_max(tf.abs(x["speech"][2]))) == 0 and float(tf.reduce_max(tf.abs(x["speech"][3]))) > 0

    raw["inputs"][0]["optional"] = False
    with pytest.raises(DataError, match=r"optional.jsonl:1, column 'image': empty value for a required input"):
        load_splits(config_from_dict(raw), BadRecordLog("error"))


def test_auxiliary_heads_learn_nothing_from_records_without_their_modality(tiny_data, caplog):
    from mmkeras.heads import head_sample_weights
    from mmkeras.model import build_model
    from mmkeras.training.loop import compile_model

    records = [json.loads(line) for line in open(os.path.join(tiny_data, "train.jsonl"))][:8]
    manifest = os.path.join(tiny_data, "no_images.jsonl")
    write_jsonl(manifest, [{**r, "image": ""} for r in records])
    raw = tiny_config_dict(tiny_data)
    raw["data"] = {"train": os.path.join(tiny_data, "train.jsonl"), "validation": manifest}
    raw["inputs"][0]["optional"] = True
    raw["outputs"][0]["aux_weight"] = 0.5
    cfg = config_from_dict(raw)
    splits = load_splits(cfg, BadRecordLog("error"))
    prep = Preprocessing.fit(cfg, splits["train"])
    weights = head_sample_weights(splits["validation"], cfg)
    assert weights["label_from_image"].tolist() == [0.0] * 8 and weights["label"].tolist() == [1.0] * 8
    assert weights["label_from_text"].tolist() == [1.0] * 8

    model = build_model(cfg, prep)
    compile_model(model, cfg, steps_per_epoch=1)
    split = splits["validation"]
    ds = make_dataset(split, prep.handlers, cfg.data, 8, training=False, targets=head_targets(split, cfg, prep.labels),
                      sample_weights=weights)
    losses = model.evaluate(ds, verbose=0, return_dict=True)
    assert losses["label_from_image_loss"] == 0.0  # absent images teach the image head nothing
    assert "label_accuracy" in losses and "sample_weight" not in caplog.text  # no Keras warning per epoch
    assert losses["label_from_text_loss"] > 0.1 and losses["label_loss"] > 0.1
    raw["inputs"][0]["optional"] = False
    assert head_sample_weights(splits["train"], config_from_dict(raw)) is None  # nothing can be absent


@pytest.mark.parametrize("subtype, channels, rate", [
    ("PCM_16", 1, 8000), ("PCM_24", 2, 8000), ("PCM_32", 1, 16000), ("FLOAT", 2, 22050), ("PCM_U8", 1, 8000)])
def test_audio_depths_channels_and_rates(tmp_path, subtype, channels, rate):
    t = np.arange(rate // 2) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    data = np.stack([tone] * channels, axis=1)
    path = str(tmp_path / "a.wav")
    soundfile.write(path, data, rate, subtype=subtype)
    wave = load_audio(path, 8000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) == 4000  # resampled to 8 kHz, 0.5 s
    peak = np.abs(np.fft.rfft(wave)).argmax() * 8000 / len(wave)
    assert abs(peak - 440) < 5
    assert np.abs(wave).max() == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("fmt", ["FLAC", "OGG"])
def test_compressed_audio(tmp_path, fmt):
    t = np.arange(8000) / 16000
    path = str(tmp_path / f"a.{fmt.lower()}")
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 1000 * t), 16000, format=fmt)
    wave = load_audio(path, 16000)
    assert len(wave) == 8000 and np.abs(wave).max() == pytest.approx(0.3, abs=0.05)


def test_vocabulary_keeps_words_seen_twice_whole():
    # 40 distinct words, each in two records: all must be whole tokens, not word pieces.
    words = [f"w{chr(97 + i // 26)}{chr(97 + i % 26)}zz" for i in range(40)]
    vocab = learn_vocab([f"{w} common" for w in words] * 2, 500)
    assert all(w in vocab for w in words)


def test_wordpiece_tokenizer_normalises_pads_and_truncates():
    vocab = learn_vocab(["Café crème brûlée", "the cat sat on the mat"] * 20, 60)
    tok = Tokenizer(vocab, max_tokens=5)
    ids = tok(tf.constant(["CAFE cat", "", "the cat sat on the mat again"])).numpy()
    assert ids.shape == (3, 5)
    assert ids[0, 0] == vocab.index("cafe") and ids[0, 1] == vocab.index("cat") and ids[0, 2:].tolist() == [0, 0, 0]
    assert ids[1].tolist() == [0] * 5
    assert 0 not in ids[2]
    assert tok(tf.constant("cat")).shape == (5,)


def test_csv_row_with_wrong_field_count_is_a_bad_record(tmp_path):
    from mmkeras.data.manifest import BadRow, read_manifest

    path = tmp_path / "m.csv"
    path.write_text("text,label\nhello,a\n\"unclosed, b\nfine,c,extra\n")
    rows = list(read_manifest(str(path)))
    assert rows[0] == (2, {"text": "hello", "label": "a"})
    bad = [(line, r.reason) for line, r in rows if isinstance(r, BadRow)]
    assert bad and all("expected 2 fields" in reason for _, reason in bad)


def test_audio_crop_is_random_in_training_and_centred_otherwise():
    from mmkeras.modalities.audio import fit_length

    wave = tf.range(100, dtype=tf.float32)
    assert fit_length(wave, 10, training=False).numpy().tolist() == list(range(45, 55))
    starts = {int(fit_length(wave, 10, training=True)[0]) for _ in range(30)}
    assert len(starts) > 5 and min(starts) >= 0 and max(starts) <= 90
    padded = fit_length(tf.ones([4]), 10, training=True).numpy()
    assert padded.tolist() == [1.0] * 4 + [0.0] * 6


AUDIO_CASES = {  # name → (channels, rate, subtype, format, decoded natively by tf.audio.decode_wav)
    "pcm16_mono": (1, 16000, "PCM_16", "WAV", True),
    "pcm16_stereo": (2, 16000, "PCM_16", "WAV", True),
    "pcm16_other_rate": (1, 8000, "PCM_16", "WAV", False),
    "pcm24": (1, 16000, "PCM_24", "WAV", False),
    "float": (2, 16000, "FLOAT", "WAV", False),
    "ogg": (1, 16000, None, "OGG", False),
}


@pytest.mark.parametrize("case", sorted(AUDIO_CASES))
def test_audio_decodes_natively_when_it_can_and_equals_soundfile(tmp_path, case):
    from mmkeras.modalities.audio import AudioInput
    from mmkeras.modalities.audio import AudioModality, is_native_wav

    channels, rate, subtype, fmt, native = AUDIO_CASES[case]
    t = np.arange(rate // 2) / rate
    data = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), -0.2 * np.sin(2 * np.pi * 330 * t)][:channels], axis=1)
    path = str(tmp_path / f"a.{fmt.lower()}")
    soundfile.write(path, data, rate, subtype=subtype, format=fmt)
    assert bool(is_native_wav(tf.io.read_file(path), 16000)) is native
    handler = AudioModality(AudioInput(name="speech", type="audio", column="audio", sample_rate=16000, seconds=1.0))
    decoded = handler.decode(tf.constant(path)).numpy()
    np.testing.assert_array_equal(decoded, load_audio(path, 16000))  # one waveform, whichever decoder


def test_non_canonical_wavs_take_the_soundfile_path(tmp_path):
    """tf.audio.decode_wav rejects several valid layouts mid-epoch; they must go to soundfile."""
    from mmkeras.modalities.audio import AudioInput
    from mmkeras.modalities.audio import AudioModality, is_native_wav

    path = str(tmp_path / "a.wav")
    soundfile.write(path, 0.3 * np.sin(np.arange(1601) / 5), 16000, subtype="PCM_16")
    raw = open(path, "rb").read()
    assert bool(is_native_wav(tf.constant(raw), 16000))
    chunk = b"id3 " + (3).to_bytes(4, "little") + b"abc\0"  # odd-sized chunk, padded
    readable = {  # layouts soundfile reads: decoded through it, to the same samples
        "chunk_before_fmt": raw[:12] + b"LIST" + (4).to_bytes(4, "little") + b"INFO" + raw[12:],
        "chunk_after_data": raw + chunk,
        "fmt_size_18": raw[:16] + (18).to_bytes(4, "little") + raw[20:36] + b"\0\0" + raw[36:],
        # A block align or byte rate that disagrees with mono 16-bit: soundfile derives them, decode_wav fails.
        "block_align_4": raw[:32] + (4).to_bytes(2, "little") + raw[34:],
        "byte_rate_wrong": raw[:28] + (16000).to_bytes(4, "little") + raw[32:],
    }
    broken = {"truncated_data": raw[:-10], "unknown_data_size": raw[:40] + b"\xff" * 4 + raw[44:],
              "header_only": raw[:20], "riff_only": b"RIFF", "empty": b""}
    for name, contents in {**readable, **broken}.items():
        assert not bool(is_native_wav(tf.constant(contents), 16000)), name
    handler = AudioModality(AudioInput(name="speech", type="audio", column="audio", sample_rate=16000, seconds=1.0))
    for name, contents in readable.items():
        variant = str(tmp_path / f"{name}.wav")
        with open(variant, "wb") as f:
            f.write(contents)
        np.testing.assert_array_equal(handler.decode(tf.constant(variant)).numpy(), load_audio(path, 16000))


@pytest.mark.parametrize("height, width", [(16, 16), (24, 20), (9, 16)])
def test_image_decode_resizes_only_when_needed_with_the_same_pixels(tmp_path, height, width):
    from PIL import Image

    from mmkeras.modalities.image import decode_image_bytes

    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(pixels).save(path)
    decoded = decode_image_bytes(tf.io.read_file(str(path)), (16, 16), 3)
    resized = tf.image.resize(pixels, (16, 16), method="bilinear", antialias=True)
    assert decoded.shape == (16, 16, 3) and decoded.dtype == tf.float32
    np.testing.assert_array_equal(decoded.numpy(), np.clip(resized.numpy(), 0, 255))


def test_images_tensorflow_cannot_read_as_configured_are_bad_values(tmp_path):
    """Validation decodes as tf.data will: what PIL opens but TensorFlow would not (or would read wrongly)."""
    from PIL import Image

    from mmkeras.modalities.image import check_image
    from mmkeras.modalities.base import BadValue

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 12, 3), dtype=np.uint8))
    cases = [("palette.bmp", image.convert("P"), 3, r"8-bit palette BMP \(TensorFlow reads its palette indices as grey"),
             ("onebit.bmp", image.convert("1"), 3, "TensorFlow cannot decode this image as 3-channel"),
             ("grey.gif", image, 1, "TensorFlow cannot decode this image as 1-channel: .* "
                                    r"\(channels must be 0 or 3 for GIF, got 1\)"),
             ("grey.bmp", image, 1, "TensorFlow cannot decode this image as 1-channel")]
    for name, picture, channels, message in cases:
        picture.save(tmp_path / name)
        with pytest.raises(BadValue, match=message):
            check_image(str(tmp_path / name), channels)
    image.save(tmp_path / "fine.gif")
    check_image(str(tmp_path / "fine.gif"), 3)


def test_audio_longer_than_the_bound_is_a_bad_value_before_it_is_read(tmp_path):
    from mmkeras.modalities.audio import AudioInput
    from mmkeras.modalities.audio import AudioModality, max_audio_seconds
    from mmkeras.modalities.base import BadValue

    handler = AudioModality(AudioInput(name="speech", type="audio", column="audio", sample_rate=8000, seconds=1.0))
    assert max_audio_seconds(1.0) == 60 and max_audio_seconds(10.0) == 200
    soundfile.write(tmp_path / "long.wav", np.zeros(8000 * 61, np.float32), 8000, subtype="PCM_16")
    with pytest.raises(BadValue, match="audio of 61 s is over the 60 s bound"):
        handler.parse_value("long.wav", str(tmp_path))
    soundfile.write(tmp_path / "ok.wav", np.full(8000 * 59, 0.1, np.float32), 8000, subtype="PCM_16")
    assert handler.parse_value("ok.wav", str(tmp_path)).endswith("ok.wav")


def test_decompression_bombs_are_bad_values_named_by_their_size(tmp_path):
    from PIL import Image

    from mmkeras.modalities.image import MAX_IMAGE_PIXELS, check_image
    from mmkeras.modalities.base import BadValue

    small_file_big_image = tmp_path / "bomb.png"
    Image.new("1", (8000, 8000)).save(small_file_big_image)  # 64 MP in a few KB
    assert small_file_big_image.stat().st_size < 100_000 and 8000 * 8000 > MAX_IMAGE_PIXELS
    with pytest.raises(BadValue, match=r"image of 8000×8000 pixels is over the 50-megapixel bound"):
        check_image(str(small_file_big_image))
    beyond_pil = tmp_path / "pil_bomb.png"
    Image.new("1", (15000, 12000)).save(beyond_pil)  # over PIL's own 179 MP: it raises in open()
    with pytest.raises(BadValue, match="image over the pixel bound"):
        check_image(str(beyond_pil))


def _png_header(width, height):
    """A PNG signature and IHDR chunk declaring `width`×`height`, and no pixels: what a hostile
    client can send the serving signature in 33 bytes."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


@pytest.mark.parametrize("fmt, mode", [("PNG", "RGB"), ("JPEG", "RGB"), ("GIF", "P"), ("BMP", "RGB"), ("BMP", "top-down")])
def test_declared_image_size_is_read_from_the_header_in_graph(fmt, mode):
    import io
    import struct

    from PIL import Image

    from mmkeras.modalities.image import declared_size

    data = io.BytesIO()
    Image.new("RGB" if mode == "top-down" else mode, (37, 23)).save(data, fmt)
    data = bytearray(data.getvalue())
    if mode == "top-down":
        data[22:26] = struct.pack("<i", -23)  # a BMP stored top row first declares a negative height
    assert declared_size(tf.constant(bytes(data))).numpy().tolist() == [23, 37]
    assert declared_size(tf.constant(b"not an image")).numpy().tolist() == [0, 0]


def test_the_shared_decoder_refuses_a_declared_bomb_before_decoding():
    """Serving decodes whatever bytes a client sends: the bound is in the graph, not only in validation."""
    from mmkeras.modalities.image import decode_image_bytes

    with pytest.raises(tf.errors.InvalidArgumentError, match=r"50-megapixel bound.*\[40000 40000\]"):
        tf.function(lambda x: decode_image_bytes(x, [16, 16], 3))(tf.constant(_png_header(40000, 40000)))
