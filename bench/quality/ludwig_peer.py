"""The quality suite's peer: Ludwig 0.11 with its own defaults, on the same splits as mmkeras.

Ludwig and torch live in a virtualenv of their own (`ensure_venv`), never in mmkeras's:
their pins would fight TensorFlow's. This module runs in mmkeras's venv and imports
neither. `run_ludwig` turns an mmkeras set into Ludwig's terms, trains it through
`ludwig_train.py` in Ludwig's venv under `measure.run_measured` (so wall time and peak
RSS cover Ludwig's whole process tree exactly as they do mmkeras's), and scores the test
predictions with mmkeras's own metric functions, not with Ludwig's statistics, so both
columns of a comparison mean the same thing (Ludwig's category "accuracy", for one, is the
macro-averaged recall; its plain accuracy is "accuracy_micro").

What is Ludwig's default and what is forced by the data (see `ludwig_config`):
- Encoders, combiner (concat), optimizer, learning rate and early stopping (5 evaluations
  on the first output's validation metric; the best checkpoint is kept) are Ludwig's. Set
  here are `trainer.epochs` (the shared budget), the random seed, and the batch size: 128
  instead of "auto" (BATCH_SIZE says why).
- Images are resized to the mmkeras `size`/`channels` and audio is limited to the
  mmkeras `seconds`, so both tools see the same pixels and the same stretch of sound.
  Audio goes to Ludwig as 16-bit WAV decoded and resampled the way mmkeras reads it, and
  BMP/GIF images as PNG: Ludwig's readers (libsox, torchvision) take neither Opus nor those.
- A timeseries input becomes one Ludwig `timeseries` feature per channel (Ludwig's series are
  univariate: whitespace-separated numbers), each limited to the mmkeras `length`.
- A multilabel output becomes a `set` feature whose labels are rewritten as space-free
  tokens, since label names may hold the spaces Ludwig's set tokenizer splits on.
- Missing values of `optional` inputs become nulls and take Ludwig's own strategies:
  image and audio "bfill" (the next row's file, then the previous row's at the end),
  text "<UNK>", number 0.0 (before z-scoring).
- The records are the ones mmkeras keeps: its own validation (`load_splits`) reads the
  manifests; records it would skip as bad (missing label, a label unseen in training, an
  unreadable file, ...) are left out of Ludwig's data too, so both score the same rows.
"""
from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile
import yaml
from PIL import Image

from bench.quality.measure import run_measured
from mmkeras.config import load_config
from mmkeras.modalities.audio import load_audio
from mmkeras.modalities.timeseries import load_trace
from mmkeras.data.preprocessing import load_splits
from mmkeras.data.records import BadRecordLog
from mmkeras.data.targets import label_names
from mmkeras.evaluation.metrics import category_metrics, multilabel_metrics, numeric_metrics

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "ludwig-requirements.txt"
TRAIN_SCRIPT = HERE / "ludwig_train.py"
DEFAULT_VENV = Path("~/.cache/mmkeras/ludwig-venv").expanduser()
MARKER = "mmkeras-requirements.sha256"
# Formats torchvision's decode_image (Ludwig's image reader) takes as they are; mmkeras also
# reads BMP and GIF, which are handed to Ludwig as PNG (a GIF's first frame, as mmkeras reads it).
LUDWIG_IMAGE_FORMATS = {"PNG", "JPEG"}
LUDWIG_OUTPUT_TYPES = {"category": "category", "multilabel": "set", "numeric": "number"}
# Ludwig's default batch size is "auto": five steps at each power of two up to 128 (its CPU
# cap) and the best measured throughput wins. On a shared 2-core machine that measurement is
# noise: with other jobs running it picked 1 for the demo (1526 steps, half an hour, per epoch),
# and Ludwig itself calls the choice non-deterministic. The peer fixes the cap instead, the
# size the search is built to reach on a CPU; run_ludwig(batch_size="auto") restores the search.
BATCH_SIZE = 128
# Threads converting media for Ludwig: decoding releases the GIL.
CHECK_THREADS = 8


def ensure_venv(venv_dir: Path = DEFAULT_VENV) -> Path:
    """Ludwig's own virtualenv, built from ludwig-requirements.txt unless already built from it; → its python.

    A marker holds the hash of the requirements it was built from. A changed file rebuilds
    the venv from scratch, so it never carries packages of an older pin set.
    """
    venv_dir = Path(venv_dir).expanduser()
    python = venv_dir / "bin" / "python"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    marker = venv_dir / MARKER
    if python.exists() and marker.exists() and marker.read_text().strip() == digest:
        return python
    # The venv gets this interpreter's Python (3.11), the one the pinned wheels are for.
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv_dir)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--no-input", "-r", str(REQUIREMENTS)], check=True)
    marker.write_text(digest + "\n")
    return python


# === The set in Ludwig's terms ===


def _media_copy(path: str, media: Path, suffix: str, write) -> str:
    """A converted copy of `path` in `media`, written once however many records share the file.

    `write(target)` writes it; each thread writes its own temporary file and renames it, so
    two records converting the same file at once never interleave.
    """
    out = media / (hashlib.sha1(path.encode()).hexdigest() + suffix)
    if not out.exists():
        tmp = out.with_name(f"{out.name}.{threading.get_ident()}{suffix}")
        write(tmp)
        os.replace(tmp, out)
    return str(out)


def _image(path: str, media: Path) -> str:
    """A path Ludwig can read: the file itself for PNG/JPEG, a PNG copy of the BMPs and GIFs
    mmkeras also reads (a GIF's first frame, as mmkeras reads it)."""
    with Image.open(path) as image:
        if image.format in LUDWIG_IMAGE_FORMATS:
            return path
        rgb = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
    return _media_copy(path, media, ".png", rgb.save)


def _audio(path: str, media: Path, sample_rate: int) -> str:
    """A 16-bit WAV copy of the waveform mmkeras reads (`load_audio`: mono, resampled).

    Ludwig reads audio through libsox, which lacks decoders mmkeras has (Debian's build has
    no Opus) and never resamples; a PCM WAV at the mmkeras rate gives both the same signal.
    """
    wave = load_audio(path, sample_rate)
    return _media_copy(path, media, ".wav", lambda target: soundfile.write(target, wave, sample_rate, subtype="PCM_16"))


def _number_feature(inp, column: str) -> str:
    """Ludwig's feature name for one column of an mmkeras numeric input (one `number` feature each)."""
    return f"{inp.name}_{column}"


def _channel_feature(inp, channel: int) -> str:
    """Ludwig's feature name for one channel of an mmkeras timeseries input (Ludwig's time series
    are univariate: one `timeseries` feature per channel)."""
    return f"{inp.name}_ch{channel}"


def _input_columns(inp, value, present: bool, media: Path) -> dict:
    """One validated mmkeras input value of a record → its Ludwig column(s); None where absent."""
    if inp.type == "numeric":
        return {_number_feature(inp, c): (v if present else None) for c, v in zip(inp.columns, value)}
    if inp.type == "timeseries":  # Ludwig reads a series as whitespace-separated numbers
        trace = load_trace(value, inp.channels) if present else None
        return {_channel_feature(inp, c): (" ".join(f"{v:.7g}" for v in trace[:, c]) if present else None)
                for c in range(inp.channels)}
    if not present:
        return {inp.name: None}
    if inp.type == "image":
        return {inp.name: _image(value, media)}
    if inp.type == "audio":
        return {inp.name: _audio(value, media, inp.sample_rate)}
    if inp.type == "text":
        return {inp.name: str(value)}
    raise _unmapped(inp)


def _unmapped(inp):
    return ValueError(f"input '{inp.name}': the Ludwig peer maps image, text, audio, numeric and timeseries "
                      f"inputs, not {inp.type}")


def _convert_split(split, inputs, media: Path) -> list[dict]:
    """The records of an mmkeras Split (validated by mmkeras itself) → their Ludwig input columns."""

    def convert(i):
        columns = {}
        for inp in inputs:
            columns.update(_input_columns(inp, split.values[inp.name][i], split.presence[inp.name][i] > 0, media))
        return columns

    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        return list(pool.map(convert, range(len(split))))


def _set_tokens(labels: list[str]) -> dict[str, str]:
    """Label name → a token without whitespace for Ludwig's `set` feature.

    Ludwig splits set values with its default "space" tokenizer, and label names may hold
    spaces (or any separator): each label becomes "l<index>", mapped back after predicting.
    """
    return {name: f"l{i}" for i, name in enumerate(labels)}


def _ludwig_row(columns: dict, targets: dict, cfg, known: dict) -> dict:
    """A record's Ludwig row: its input columns and its labels (a multilabel one as set tokens)."""
    row = dict(columns)
    for out in cfg.outputs:
        value = targets[out.name]
        if out.type == "multilabel":
            tokens = _set_tokens(known[out.name])
            value = " ".join(tokens[name] for name in value)
        row[out.name] = value
    return row


def ludwig_config(cfg, inputs, epochs: int, batch_size: int | str = BATCH_SIZE) -> dict:
    """The Ludwig config for an mmkeras config: Ludwig's defaults but for what the data forces,
    the epoch budget and (see BATCH_SIZE) the batch size."""
    features = []
    for inp in inputs:
        if inp.type == "numeric":
            features += [{"name": _number_feature(inp, c), "type": "number"} for c in inp.columns]
        elif inp.type == "image":
            features.append({"name": inp.name, "type": "image", "preprocessing": {
                "height": inp.size[0], "width": inp.size[1], "num_channels": inp.channels}})
        elif inp.type == "audio":
            features.append({"name": inp.name, "type": "audio",
                             "preprocessing": {"audio_file_length_limit_in_s": inp.seconds}})
        elif inp.type == "text":
            features.append({"name": inp.name, "type": "text"})
        elif inp.type == "timeseries":
            features += [{"name": _channel_feature(inp, c), "type": "timeseries",
                          "preprocessing": {"timeseries_length_limit": inp.length}} for c in range(inp.channels)]
        else:
            raise _unmapped(inp)
    outputs = []
    for out in cfg.outputs:
        feature = {"name": out.name, "type": LUDWIG_OUTPUT_TYPES[out.type]}
        if out.loss_weight != 1:
            feature["loss"] = {"weight": out.loss_weight}
        outputs.append(feature)
    trainer = {"epochs": epochs, "batch_size": batch_size}
    if batch_size != "auto":
        # Else Ludwig tunes the evaluation batch size by throughput too (speed only, not results).
        trainer["eval_batch_size"] = batch_size
    return {"input_features": features, "output_features": outputs, "trainer": trainer}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


# === Scoring ===


def _score(out, labels, truth: list, prediction: dict) -> dict:
    """mmkeras's metrics for one output, from Ludwig's test predictions."""
    if out.type == "numeric":
        return numeric_metrics(truth, prediction["predictions"])
    if out.type == "multilabel":
        names = {token: name for name, token in _set_tokens(labels).items()}
        index = {name: i for i, name in enumerate(labels)}
        y_true = np.zeros((len(truth), len(labels)))
        y_prob = np.zeros_like(y_true)
        for row, (true, predicted) in enumerate(zip(truth, prediction["predicted"])):
            y_true[row, [index[n] for n in true]] = 1
            # Ludwig's own decision (probability >= its threshold, 0.5) as 0/1 scores. Its set
            # vocabulary also holds special tokens (<UNK>): a predicted one names no label and is
            # left out, which spares Ludwig that false positive.
            y_prob[row, [index[names[t]] for t in predicted if t in names]] = 1
        return multilabel_metrics(y_true, y_prob, labels)
    # Ludwig's vocabulary holds the training labels in frequency order (no <UNK> for an
    # output); a label beyond its `most_common` cap gets probability 0.
    vocabulary = {name: i for i, name in enumerate(prediction["vocabulary"])}
    probabilities = np.asarray(prediction["probabilities"], dtype=float)
    y_prob = np.zeros((len(probabilities), len(labels)))
    for column, name in enumerate(labels):
        if name in vocabulary:
            y_prob[:, column] = probabilities[:, vocabulary[name]]
    return category_metrics([labels.index(name) for name in truth], y_prob, labels)


# === The run ===


def _has_libsox() -> bool:
    """Whether torchaudio's sox backend (Ludwig's only audio reader) can load: it links the unversioned libsox.so."""
    try:
        ctypes.CDLL("libsox.so")
    except OSError:
        return False
    return True


def _ludwig_env() -> dict:
    """The environment for Ludwig's process: none of mmkeras's venv, and no hub downloads.

    Ludwig's defaults download nothing; the offline switches make an attempt fail at once
    instead of waiting on a network this machine does not have.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


def run_ludwig(config_path: Path, inputs: list[str] | None, epochs: int, out_dir: Path, *, seed: int = 0,
               batch_size: int | str = BATCH_SIZE, timeout_s: float | None = None,
               venv_dir: Path = DEFAULT_VENV) -> dict:
    """Train Ludwig on the set of an mmkeras config, on the mmkeras `inputs` named (None = all), test it.

    → {"metrics": {output: {metric: value}}, "wall_s", "peak_rss_mb", "returncode", "timed_out",
       "log", "rows": {split: {"kept", "skipped"}}, "ludwig": {versions, batch size, epochs run, ...}};
    without "metrics" and "ludwig" when Ludwig failed (its log says why).
    """
    cfg = load_config(str(config_path))
    if not cfg.data.validation or not cfg.data.test:
        raise ValueError(f"{config_path}: the Ludwig peer needs explicit validation and test manifests")
    names = [i.name for i in cfg.inputs]
    if inputs is not None and (not inputs or set(inputs) - set(names)):
        raise ValueError(f"inputs {inputs}: name one or more of the config's inputs {names}")
    chosen = [i for i in cfg.inputs if inputs is None or i.name in inputs]
    python = ensure_venv(venv_dir)

    if any(i.type == "audio" for i in chosen) and not _has_libsox():
        raise RuntimeError("Ludwig reads audio through torchaudio's sox backend, which needs libsox.so: "
                           "apt-get install -y libsox-dev")

    out_dir = Path(out_dir).resolve()
    if out_dir.exists():
        # A rerun replaces an earlier peer run (Ludwig would otherwise number its results
        # folders on); any other non-empty folder is not this function's to delete.
        if any(out_dir.iterdir()) and not (out_dir / "ludwig.yaml").exists():
            raise ValueError(f"{out_dir} is not empty and holds no earlier Ludwig peer run")
        shutil.rmtree(out_dir)
    data_dir, media = out_dir / "data", out_dir / "data" / "media"
    media.mkdir(parents=True)
    # mmkeras's own validation picks the records, so both tools train and score the same rows.
    log = BadRecordLog("skip")
    splits = load_splits(dataclasses.replace(cfg, inputs=chosen), log)
    known = {o.name: label_names(o, splits["train"].labels[o.name]) for o in cfg.outputs}
    for split_name, split in splits.items():
        rows = [_ludwig_row(columns, {o.name: split.labels[o.name][i] for o in cfg.outputs}, cfg, known)
                for i, columns in enumerate(_convert_split(split, chosen, media))]
        _write_jsonl(data_dir / f"{split_name}.jsonl", rows)
    with open(out_dir / "ludwig.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(ludwig_config(cfg, chosen, epochs, batch_size), f, sort_keys=False)

    predictions_path = out_dir / "predictions.json"
    command = [str(python), str(TRAIN_SCRIPT), "--config", str(out_dir / "ludwig.yaml"),
               "--train", str(data_dir / "train.jsonl"), "--validation", str(data_dir / "validation.jsonl"),
               "--test", str(data_dir / "test.jsonl"), "--output", str(out_dir / "results"),
               "--predictions", str(predictions_path), "--seed", str(seed)]
    run = run_measured(command, out_dir / "ludwig.log", env=_ludwig_env(), cwd=str(out_dir), timeout_s=timeout_s)

    result = {**run, "rows": {name: {"kept": len(split), "skipped": log.count(split.manifest)}
                              for name, split in splits.items()}}
    if run["returncode"] == 0 and predictions_path.exists():
        predicted = json.loads(predictions_path.read_text())
        result["ludwig"] = predicted["info"]
        truth = {o.name: splits["test"].labels[o.name] for o in cfg.outputs}
        scores = {o.name: _score(o, known[o.name], truth[o.name], predicted["outputs"][o.name]) for o in cfg.outputs}
        # The scalar metrics, as the harness keeps of mmkeras's metrics.json.
        result["metrics"] = {name: {k: v for k, v in m.items() if isinstance(v, float)} for name, m in scores.items()}
    return result
