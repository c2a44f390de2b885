"""Shared fixtures: a tiny multimodal dataset written to disk, and a tiny config for it.

The data is learnable on purpose: each class has its own image colour, its own
words, its own tone frequency and its own numeric offset, so a few epochs of a
tiny model separate them and tests can assert learning happened.
"""
import json
import os

import numpy as np
import pytest
import soundfile
from PIL import Image

CLASSES = ["red", "green", "blue"]
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
WORDS = {"red": "apple cherry fire", "green": "leaf grass frog", "blue": "sea sky whale"}
TONES = {"red": 440.0, "green": 880.0, "blue": 1760.0}
SAMPLE_RATE = 8000


def write_sample(folder, idx, label, rng, image_ext="png"):
    """Write one sample's image and audio; return its manifest record."""
    os.makedirs(os.path.join(folder, "img"), exist_ok=True)
    os.makedirs(os.path.join(folder, "wav"), exist_ok=True)
    pixels = np.clip(np.array(COLOURS[label]) + rng.normal(0, 20, (24, 24, 3)), 0, 255).astype(np.uint8)
    image_path = f"img/{idx}.{image_ext}"
    Image.fromarray(pixels).save(os.path.join(folder, image_path))
    t = np.arange(int(SAMPLE_RATE * rng.uniform(0.3, 0.7))) / SAMPLE_RATE
    wave = 0.5 * np.sin(2 * np.pi * TONES[label] * t) + rng.normal(0, 0.02, t.shape)
    audio_path = f"wav/{idx}.wav"
    soundfile.write(os.path.join(folder, audio_path), wave.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    words = WORDS[label].split()
    text = " ".join(rng.choice(words, size=3))
    return {"image": image_path, "audio": audio_path, "text": text,
            "x1": float(CLASSES.index(label) + rng.normal(0, 0.3)), "x2": float(rng.normal()),
            "label": label, "tags": ";".join(sorted({label, "warm" if label == "red" else "cool"})),
            "score": float(CLASSES.index(label))}


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def make_dataset_dir(folder, n_train=48, n_eval=18, seed=0):
    rng = np.random.default_rng(seed)
    splits = {"train": n_train, "val": n_eval, "test": n_eval}
    idx = 0
    for split, n in splits.items():
        records = []
        for i in range(n):
            label = CLASSES[i % len(CLASSES)]
            records.append(write_sample(folder, idx, label, rng, image_ext="jpg" if idx % 5 == 0 else "png"))
            idx += 1
        write_jsonl(os.path.join(folder, f"{split}.jsonl"), records)
    return folder


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A folder with train/val/test.jsonl, PNG+JPEG images and WAV audio (3 classes)."""
    return make_dataset_dir(str(tmp_path_factory.mktemp("tiny_data")))


def tiny_config_dict(folder, **training):
    """A tiny but complete config over `tiny_data` (all four modalities)."""
    return {
        "name": "tiny",
        "data": {"train": os.path.join(folder, "train.jsonl"), "validation": os.path.join(folder, "val.jsonl"),
                 "test": os.path.join(folder, "test.jsonl")},
        "inputs": [
            {"name": "image", "type": "image", "size": [16, 16], "encoder": {"type": "cnn", "filters": [4, 8], "dim": 8}},
            {"name": "text", "type": "text", "max_tokens": 6, "vocab_size": 50,
             "encoder": {"type": "transformer", "dim": 8, "heads": 1, "ff_dim": 8}},
            {"name": "speech", "type": "audio", "column": "audio", "sample_rate": SAMPLE_RATE, "seconds": 0.5,
             "n_mels": 16, "encoder": {"type": "audio_cnn", "filters": [4, 8], "dim": 8}},
            {"name": "stats", "type": "numeric", "columns": ["x1", "x2"], "encoder": {"type": "mlp", "units": [8]}},
        ],
        "fusion": {"type": "concat", "dim": 16},
        "outputs": [{"name": "label", "type": "category"}],
        "training": {"epochs": 2, "batch_size": 8, "learning_rate": 0.01, **training},
    }


@pytest.fixture
def tiny_config_file(tiny_data, tmp_path):
    import yaml

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config_dict(tiny_data)))
    return str(path)


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory):
    """A run directory trained by the real train.py on `tiny_data` (shared by export tests)."""
    import subprocess
    import sys

    import yaml

    tmp = tmp_path_factory.mktemp("tiny_run")
    raw = tiny_config_dict(tiny_data, epochs=3)
    raw["inputs"][0]["optional"] = True
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(raw))
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "train.py", "--config", str(tmp / "tiny.yaml"), "--output", str(tmp / "run")],
                          capture_output=True, text=True, cwd=repo)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return str(tmp / "run")


@pytest.fixture(scope="session")
def exported(tiny_run):
    """`tiny_run`'s export folder after `python -m export RUN --quantize float32` (SavedModel + float32 TFLite)."""
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-m", "export", tiny_run, "--quantize", "float32"],
                          capture_output=True, text=True, cwd=repo)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return os.path.join(tiny_run, "export")
