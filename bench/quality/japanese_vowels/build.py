"""Build the `japanese_vowels` quality set: 12 LPC cepstrum channels of a spoken vowel → its speaker.

Command (from the repository root)::

    .venv/bin/python bench/quality/japanese_vowels/build.py            # into common.set_dir("japanese_vowels")
    .venv/bin/python bench/quality/japanese_vowels/build.py --out DIR  # into DIR
    .venv/bin/python bench/quality/japanese_vowels/build.py --small    # ≤ 200 records, for quick checks

Needs pip (downloads the pinned aeon 1.6.0 wheel, sha256-checked, without installing it: the
set ships inside it as `aeon/datasets/data/JapaneseVowels/*.ts`).

Each record is one utterance of the Japanese vowels /ae/ by one of 9 male speakers,
analysed into 12 LPC cepstrum coefficients per frame, 7–29 frames: a `.npy` file of
[frames, 12] float32. The label is the speaker. The original split is kept as the shift:
its test utterances were recorded apart from the training ones ("a varied distribution
based on external factors of timing and experimental availability", 24–88 per speaker),
and a seeded 15 % of the training utterances (30 per speaker; by a hash of the record id)
validate. Each manifest line::

    {"id": "train-0007", "lpc": "lpc/train-0007.npy", "frames": 20, "label": "speaker1"}
"""
from __future__ import annotations

import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make `bench.quality` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.quality import common  # noqa: E402

NAME = "japanese_vowels"
SEED = 20261206
WHEEL = ("aeon==1.6.0", "d05227086706f80111ac5fee8de4d5d3115bb3bcfd1c786c8629393055816409")
MEMBER = "aeon/datasets/data/JapaneseVowels/JapaneseVowels_{}.ts"
CHANNELS = 12
VAL_FRACTION = 0.15  # of the training utterances
SMALL = {"train": 120, "val": 40, "test": 40}


def parse_ts(text: str) -> list[tuple[np.ndarray, str]]:
    """sktime/aeon `.ts` text → [(series [frames, channels], class label)]: after `@data`, one
    line per series, its channels separated by ':' (comma-separated values each), the label last."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().lower() == "@data") + 1
    series = []
    for line in lines[start:]:
        if not line.strip():
            continue
        *channels, label = line.strip().split(":")
        if len(channels) != CHANNELS:
            raise SystemExit(f"expected {CHANNELS} channels, got {len(channels)}: {line[:60]}")
        values = np.array([[float(v) for v in channel.split(",")] for channel in channels], np.float32)
        series.append((values.T, label))
    return series


def build(out: Path, small: bool = False) -> None:
    start = time.time()
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = common.pip_download(*WHEEL, Path(tmp))
        with zipfile.ZipFile(wheel) as z:
            original = {split: parse_ts(z.read(MEMBER.format(split.upper())).decode("utf-8"))
                        for split in ("train", "test")}
    common.clean_output(out)
    (out / "lpc").mkdir()
    splits = {s: [] for s in common.SPLITS}
    for split, series in original.items():
        for i, (values, label) in enumerate(series):
            key = f"{split}-{i:04d}"
            path = f"lpc/{key}.npy"
            np.save(out / path, values)
            record = {"id": key, "lpc": path, "frames": len(values), "label": f"speaker{label}"}
            if split == "test":
                splits["test"].append(record)
            else:  # a seeded VAL_FRACTION of the training utterances validate
                held = common.stable_fraction(key, SEED) < VAL_FRACTION
                splits["val" if held else "train"].append(record)
    if small:
        splits = {s: recs[: SMALL[s]] for s, recs in splits.items()}
    config = {
        "name": NAME,
        # 29 frames at most: `length` holds every utterance (shorter ones padded with the means).
        "inputs": [{"name": "lpc", "type": "timeseries", "column": "lpc", "channels": CHANNELS, "length": 32}],
        "outputs": [{"name": "speaker", "type": "category", "column": "label"}],
    }
    info = {
        "task": "12 LPC cepstrum coefficients per frame of a spoken /ae/ (7-29 frames) -> speaker (9 classes)",
        "shift": "test: the original test utterances, recorded apart from the training ones (other sessions)",
        "small": small,
        "seed": SEED,
        "sources": {WHEEL[0]: {"sha256": WHEEL[1], "licence": "aeon: BSD-3-Clause; the data: UCI Machine Learning "
                                                               "Repository, Japanese Vowels (Kudo, Toyama, Shimbo "
                                                               "1999), CC BY 4.0"}},
        "per_split": {s: {"labels": dict(sorted(Counter(r["label"] for r in recs).items())),
                          "frames": [min(r["frames"] for r in recs), max(r["frames"] for r in recs)] if recs else []}
                      for s, recs in splits.items()},
    }
    common.write_set(out, splits, config, info)
    print(f"built in {time.time() - start:.0f} s")


if __name__ == "__main__":
    common.main(NAME, build, __doc__)
