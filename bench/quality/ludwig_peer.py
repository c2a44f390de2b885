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
- A multilabel output becomes a `set` feature whose labels are rewritten as space-free
  tokens, since label names may hold the spaces Ludwig's set tokenizer splits on.
- Missing values of `optional` inputs become nulls and take Ludwig's own strategies:
  image and audio "bfill" (the next row's file, then the previous row's at the end),
  text "<UNK>", number 0.0 (before z-scoring).
- Records mmkeras would skip as bad (missing label, a label unseen in training, an
  unreadable file, ...) are left out of Ludwig's data too, so both score the same rows.
"""
from __future__ import annotations

import csv
import ctypes
import hashlib
import json
import math
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
from PIL import Image, UnidentifiedImageError
from scipy.signal import resample_poly

from bench.quality.measure import run_measured
from mmkeras.config import load_config
from mmkeras.evaluation.metrics import METRICS

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "ludwig-requirements.txt"
TRAIN_SCRIPT = HERE / "ludwig_train.py"
DEFAULT_VENV = Path("~/.cache/mmkeras/ludwig-venv").expanduser()
MARKER = "mmkeras-requirements.sha256"
# Formats torchvision's decode_image (Ludwig's image reader) takes as they are; mmkeras also
# reads BMP and GIF, which are handed to Ludwig as PNG (a GIF's first frame, as mmkeras reads it).
LUDWIG_IMAGE_FORMATS = {"PNG", "JPEG"}
MMKERAS_IMAGE_FORMATS = {"PNG", "JPEG", "GIF", "BMP"}
LUDWIG_OUTPUT_TYPES = {"category": "category", "multilabel": "set", "numeric": "number"}
# Ludwig's default batch size is "auto": five steps at each power of two up to 128 (its CPU
# cap) and the best measured throughput wins. On a shared 2-core machine that measurement is
# noise: with other jobs running it picked 1 for the demo (1526 steps, half an hour, per epoch),
# and Ludwig itself calls the choice non-deterministic. The peer fixes the cap instead, the
# size the search is built to reach on a CPU; run_ludwig(batch_size="auto") restores the search.
BATCH_SIZE = 128
# mmkeras validates records with this many threads too: decoding releases the GIL.
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


class _Skip(Exception):
    """A record mmkeras skips as bad (`on_bad_record: skip`): left out of Ludwig's data too."""


def _read_manifest(path: str):
    """The records of a JSONL or CSV manifest, as mmkeras reads them; malformed rows come out as None."""
    with open(path, encoding="utf-8", newline="") as f:
        if path.lower().endswith(".csv"):
            reader = csv.reader(f)
            header = next(reader, None) or []
            for row in reader:
                if any(cell.strip() for cell in row):
                    yield dict(zip(header, row)) if len(row) == len(header) else None
            return
        for line in f:
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    record = None
                yield record if isinstance(record, dict) else None


def _raw(record: dict, column: str, optional: bool):
    """The record's value in `column`, or None when an optional input is absent (missing or empty)."""
    value = record.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        if optional:
            return None
        raise _Skip(f"missing or empty '{column}'")
    return value


def _file(value, folder: str) -> str:
    """A manifest path → absolute path inside the manifest's folder (mmkeras's `resolve_file`)."""
    full = os.path.realpath(os.path.join(folder, str(value).strip()))
    root = os.path.realpath(folder)
    if os.path.commonpath([full, root]) != root or not os.path.isfile(full):
        raise _Skip(f"no such file inside the manifest's folder: {value}")
    return full


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
    """Check the image decodes as mmkeras checks it; → a path Ludwig can read (a PNG copy of BMP/GIF)."""
    try:
        with Image.open(path) as image:
            if image.format not in MMKERAS_IMAGE_FORMATS:
                raise _Skip(f"unsupported image format {image.format}")
            image.load()
            if image.format in LUDWIG_IMAGE_FORMATS:
                return path
            rgb = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise _Skip(f"not a readable image: {e}") from None
    return _media_copy(path, media, ".png", rgb.save)


def _audio(path: str, media: Path, sample_rate: int) -> str:
    """Decode the audio as mmkeras does (soundfile, mono, resampled to `sample_rate`); → a 16-bit WAV copy.

    Ludwig reads audio through libsox, which lacks decoders mmkeras has (Debian's build has
    no Opus) and never resamples; a PCM WAV at the mmkeras rate gives both the same signal.
    """
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for unreadable files
        raise _Skip(f"not a readable audio file: {str(e).splitlines()[0]}") from None
    if not len(data) or not np.isfinite(data).all():
        raise _Skip("audio file is empty or holds NaN/infinite samples")
    wave = data.mean(axis=1)
    if rate != sample_rate:
        g = math.gcd(int(rate), int(sample_rate))
        wave = resample_poly(wave, sample_rate // g, int(rate) // g)
    return _media_copy(path, media, ".wav",
                       lambda target: soundfile.write(target, np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16"))


def _number(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _Skip(f"not a number: {value!r}") from None
    if not math.isfinite(number):
        raise _Skip(f"not a finite number: {value!r}")
    return number


def _labels(value, out) -> list[str]:
    """A multilabel value (a list, or one string split on the output's separator) → label names."""
    names = value if isinstance(value, list) else str(value).split(out.separator)
    return [str(n).strip() for n in names if str(n).strip()]


def _target(record: dict, out, known: list[str] | None):
    """The output's label as mmkeras parses it; `known` (the training labels) is None on the training split."""
    value = record.get(out.source)
    if value is None or (isinstance(value, (str, list)) and not value):
        raise _Skip(f"empty label '{out.source}'")
    if out.type == "numeric":
        return _number(value)
    names = [str(value).strip()] if out.type == "category" else _labels(value, out)
    if known is not None and not set(names) <= set(known):
        raise _Skip("label does not occur in the training split")
    return names[0] if out.type == "category" else names


def _input_columns(inp, record: dict, folder: str, media: Path) -> dict:
    """One mmkeras input of a record → its Ludwig column(s)."""
    if inp.type == "numeric":
        raw = [record.get(c) for c in inp.columns]
        absent = [v is None or (isinstance(v, str) and not v.strip()) for v in raw]
        if all(absent) and inp.optional:
            return {_number_feature(inp, c): None for c in inp.columns}
        if any(absent):
            raise _Skip("empty numeric column")
        return {_number_feature(inp, c): _number(v) for c, v in zip(inp.columns, raw)}
    value = _raw(record, inp.column or inp.name, inp.optional)
    if value is None:
        return {inp.name: None}
    if inp.type == "image":
        return {inp.name: _image(_file(value, folder), media)}
    if inp.type == "audio":
        return {inp.name: _audio(_file(value, folder), media, inp.sample_rate)}
    return {inp.name: str(value)}


def _number_feature(inp, column: str) -> str:
    """Ludwig's feature name for one column of an mmkeras numeric input (one `number` feature each)."""
    return f"{inp.name}_{column}"


def _convert_split(manifest: str, cfg, inputs, media: Path, known: dict | None):
    """→ ([(Ludwig input columns, targets by output)] of the records mmkeras keeps, number skipped)."""
    folder = os.path.dirname(manifest)

    def convert(record):
        if record is None:
            return None
        try:
            columns = {}
            for inp in inputs:
                columns.update(_input_columns(inp, record, folder, media))
            return columns, {o.name: _target(record, o, None if known is None else known[o.name]) for o in cfg.outputs}
        except _Skip:
            return None

    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        converted = list(pool.map(convert, _read_manifest(manifest)))
    kept = [c for c in converted if c is not None]
    return kept, len(converted) - len(kept)


def _label_vocabulary(out, parsed: list) -> list[str] | None:
    """mmkeras's label order for an output: sorted training labels (None for numeric)."""
    if out.type == "category":
        return sorted(set(parsed))
    if out.type == "multilabel":
        return sorted({n for names in parsed for n in names})
    return None


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
        else:
            features.append({"name": inp.name, "type": "text"})
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
        return METRICS["numeric"](truth, prediction["predictions"])
    if out.type == "multilabel":
        names = {token: name for name, token in _set_tokens(labels).items()}
        index = {name: i for i, name in enumerate(labels)}
        y_true = np.zeros((len(truth), len(labels)))
        y_prob = np.zeros_like(y_true)
        for row, (true, predicted) in enumerate(zip(truth, prediction["predicted"])):
            y_true[row, [index[n] for n in true]] = 1
            # Ludwig's own decision (probability >= its threshold, 0.5) as 0/1 scores.
            y_prob[row, [index[names[t]] for t in predicted]] = 1
        return METRICS["multilabel"](y_true, y_prob, labels)
    # Ludwig's vocabulary holds the training labels in frequency order (no <UNK> for an
    # output); a label beyond its `most_common` cap gets probability 0.
    vocabulary = {name: i for i, name in enumerate(prediction["vocabulary"])}
    probabilities = np.asarray(prediction["probabilities"], dtype=float)
    y_prob = np.zeros((len(probabilities), len(labels)))
    for column, name in enumerate(labels):
        if name in vocabulary:
            y_prob[:, column] = probabilities[:, vocabulary[name]]
    return METRICS["category"]([labels.index(name) for name in truth], y_prob, labels)


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
    records, skipped, known = {}, {}, None
    for split, manifest in (("train", cfg.data.train), ("validation", cfg.data.validation), ("test", cfg.data.test)):
        records[split], skipped[split] = _convert_split(manifest, cfg, chosen, media, known)
        if known is None:
            known = {o.name: _label_vocabulary(o, [t[o.name] for _, t in records["train"]]) for o in cfg.outputs}
    for split, kept in records.items():
        _write_jsonl(data_dir / f"{split}.jsonl", [_ludwig_row(c, t, cfg, known) for c, t in kept])
    with open(out_dir / "ludwig.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(ludwig_config(cfg, chosen, epochs, batch_size), f, sort_keys=False)

    predictions_path = out_dir / "predictions.json"
    command = [str(python), str(TRAIN_SCRIPT), "--config", str(out_dir / "ludwig.yaml"),
               "--train", str(data_dir / "train.jsonl"), "--validation", str(data_dir / "validation.jsonl"),
               "--test", str(data_dir / "test.jsonl"), "--output", str(out_dir / "results"),
               "--predictions", str(predictions_path), "--seed", str(seed)]
    run = run_measured(command, out_dir / "ludwig.log", env=_ludwig_env(), cwd=str(out_dir), timeout_s=timeout_s)

    result = {**run, "rows": {s: {"kept": len(records[s]), "skipped": skipped[s]} for s in records}}
    if run["returncode"] == 0 and predictions_path.exists():
        predicted = json.loads(predictions_path.read_text())
        result["ludwig"] = predicted["info"]
        truth = {o.name: [t[o.name] for _, t in records["test"]] for o in cfg.outputs}
        scores = {o.name: _score(o, known[o.name], truth[o.name], predicted["outputs"][o.name]) for o in cfg.outputs}
        # The scalar metrics, as the harness keeps of mmkeras's metrics.json.
        result["metrics"] = {name: {k: v for k, v in m.items() if isinstance(v, float)} for name, m in scores.items()}
    return result
