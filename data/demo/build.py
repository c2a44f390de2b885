"""Build the mmkeras demo dataset: emojis as image + text + audio + numbers.

Command (from the repository root)::

    /work/venv/bin/python data/demo/build.py            # writes into data/demo/
    /work/venv/bin/python data/demo/build.py --out DIR  # writes into DIR

Needs:
    * ``npm`` on PATH and access to the npm registry. The script runs
      ``npm pack emoji-datasource-google@16.0.0 emojibase-data@17.0.0`` in a
      temporary directory and checks the tarballs against pinned SHA-1 sums.
      This is the only network access.
    * ``espeak-ng`` on PATH (speech synthesis of the emoji names).
    * Python with numpy, pillow, scipy and soundfile (libsndfile >= 1.0.29 for
      Ogg/Opus).

Produces, in the output folder (existing ``images/``, ``audio/`` and manifests
there are deleted first, so the result is always a clean rebuild):

    images/<hexcode>.png   48x48 RGB Google/Noto emoji on a white background
    audio/<hexcode>.ogg    the English emoji name spoken by espeak-ng,
                           16 kHz mono, Ogg/Opus, silence trimmed, <= ~2 s
    train.jsonl, val.jsonl, test.jsonl
                           stratified 80/10/10 split by label (fixed seed)
    train.csv              the same records as train.jsonl, as CSV

One record per base emoji of emojibase-data (skin-tone variants and the
"component" group excluded) that has a Google image. Each manifest line is::

    {"id": "1F600", "image": "images/1f600.png", "audio": "audio/1f600.ogg",
     "text": "<tags joined by spaces>", "version": 1.0, "codepoints": 1,
     "label": "smileys & emotion", "subgroup": "smiling"}

The label is the emoji group (9 classes). The text deliberately carries the
tags, not the name, so text and audio (the spoken name) are different views.

The build is deterministic: same inputs, same tool versions -> same files.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image
from scipy.signal import resample_poly

# --- Pinned sources ---------------------------------------------------------
# npm package spec -> SHA-1 of the tarball (the "shasum" npm reports), so a
# changed upstream tarball fails loudly instead of silently changing the data.
PACKAGES = {
    "emoji-datasource-google@16.0.0": "a80ac3e8106cbd4d8648ce758aa099e8827b6157",
    "emojibase-data@17.0.0": "5816fba6395da6b567fbd54b029ca6b5de2d9255",
}
IMAGE_DIR_IN_TARBALL = "package/img/google/64/"

# --- Dataset parameters -------------------------------------------------------
EXCLUDED_GROUPS = {2}  # "component": skin tones, hair styles - not emojis on their own
IMAGE_SIZE = 48  # largest size that keeps the folder <= 10 MB together with the audio
SAMPLE_RATE = 16_000
MAX_SECONDS = 2.0
ESPEAK_VOICE = "en"
ESPEAK_BASE_SPEED = 200  # words per minute
ESPEAK_MAX_SPEED = 450  # espeak-ng's upper limit for its normal speed range
# Ogg/Opus rather than Ogg/Vorbis: a Vorbis stream carries ~3.7 KB of codebook
# headers, which alone would exceed the 10 MB budget for ~1900 clips. libsndfile
# maps this level linearly onto 256 kbit/s (0.0) .. 6 kbit/s (1.0); 0.98 is
# about 11 kbit/s, the lowest setting at which libopus still codes wideband
# (0-8 kHz) speech; from ~0.99 it falls back to narrowband (0-4 kHz).
OPUS_COMPRESSION_LEVEL = 0.98
SILENCE_THRESHOLD = 0.01  # ~ -40 dBFS; espeak-ng pads with digital silence
EDGE_PAD_SECONDS = 0.03  # keep a little room so onsets/offsets are not clipped
PEAK_LEVEL = 0.9
SPLIT_FRACTIONS = {"val": 0.1, "test": 0.1}  # the rest is train
SEED = 20240607
MANIFEST_FIELDS = ["id", "image", "audio", "text", "version", "codepoints", "label", "subgroup"]


# --- Fetching -----------------------------------------------------------------
def npm_pack(workdir: Path) -> dict[str, Path]:
    """Download the pinned npm tarballs into workdir and verify their SHA-1."""
    out = subprocess.run(
        ["npm", "pack", "--json", *PACKAGES], cwd=workdir, check=True,
        capture_output=True, text=True,
    ).stdout
    tarballs = {}
    for entry in json.loads(out):
        spec = f"{entry['name']}@{entry['version']}"
        path = workdir / entry["filename"]
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        if digest != PACKAGES[spec]:
            sys.exit(f"checksum mismatch for {spec}: {digest} != {PACKAGES[spec]}")
        tarballs[spec] = path
    return tarballs


def read_tar_members(tarball: Path, wanted) -> dict[str, bytes]:
    """Read the members whose name satisfies wanted(name) into memory.

    One sequential pass: random access into a .tgz would re-decompress it.
    """
    members = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for info in tar:
            if info.isfile() and wanted(info.name):
                members[info.name] = tar.extractfile(info).read()
    return members


# --- Selecting and matching emojis --------------------------------------------
def strip_fe0f(hexcode: str) -> str:
    """Sequence key without variation selector 16, which the sources use inconsistently."""
    return "-".join(p for p in hexcode.upper().split("-") if p != "FE0F")


def build_image_index(datasource: list[dict], images: dict[str, bytes]) -> dict[str, str]:
    """Map FE0F-less hexcode -> image file name, from emoji-datasource's unified/non_qualified forms."""
    index = {}
    for emoji in datasource:
        if not emoji.get("has_img_google") or emoji["image"] not in images:
            continue
        for key in ("unified", "non_qualified"):
            if emoji.get(key):
                index.setdefault(strip_fe0f(emoji[key]), emoji["image"])
    return index


def find_image(hexcode: str, images: dict[str, bytes], index: dict[str, str]) -> str | None:
    """Image file name for an emojibase hexcode: exact lowercase name first, then via emoji-datasource."""
    direct = hexcode.lower() + ".png"
    if direct in images:
        return direct
    return index.get(strip_fe0f(hexcode))


def select_emojis(emojibase: list[dict], messages: dict) -> list[dict]:
    """Base emojis with a group, outside the excluded groups, as dataset records (no media yet)."""
    groups = {g["order"]: g["message"] for g in messages["groups"]}
    subgroups = {s["order"]: s["message"] for s in messages["subgroups"]}
    records = []
    # Top-level entries of data.json are base emojis; skin-tone variants live in
    # their "skins" list and are therefore never visited.
    for emoji in emojibase:
        if emoji.get("group") is None or emoji["group"] in EXCLUDED_GROUPS:
            continue
        hexcode = emoji["hexcode"]
        records.append({
            "id": hexcode,
            "image": f"images/{hexcode.lower()}.png",
            "audio": f"audio/{hexcode.lower()}.ogg",
            "text": " ".join(emoji.get("tags") or []),
            "version": float(emoji["version"]),
            "codepoints": len(hexcode.split("-")),
            "label": groups[emoji["group"]],
            "subgroup": subgroups[emoji["subgroup"]],
            "_name": emoji["label"],  # spoken in the audio; not written to the manifests
        })
    return records


# --- Images ---------------------------------------------------------------------
def render_image(png: bytes, path: Path) -> None:
    """Flatten onto white (models expect RGB), downsample with Lanczos, save an optimised PNG."""
    rgba = Image.open(io.BytesIO(png)).convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    rgb = rgb.resize((IMAGE_SIZE, IMAGE_SIZE), Image.LANCZOS)
    rgb.save(path, "PNG", optimize=True)


# --- Audio ------------------------------------------------------------------------
def speak(text: str, speed: int, tmpdir: Path) -> tuple[np.ndarray, int]:
    """Synthesise text with espeak-ng and return (mono float samples, sample rate)."""
    with tempfile.NamedTemporaryFile(suffix=".wav", dir=tmpdir) as wav:
        subprocess.run(
            ["espeak-ng", "-v", ESPEAK_VOICE, "-s", str(speed), "-w", wav.name, "--", text],
            check=True, capture_output=True,
        )
        samples, rate = sf.read(wav.name, dtype="float32", always_2d=True)
    return samples.mean(axis=1), rate


def trim_silence(samples: np.ndarray, rate: int) -> np.ndarray:
    """Cut leading/trailing silence, keeping a short pad around the speech."""
    loud = np.flatnonzero(np.abs(samples) > SILENCE_THRESHOLD)
    if loud.size == 0:
        return samples
    pad = int(EDGE_PAD_SECONDS * rate)
    return samples[max(loud[0] - pad, 0): loud[-1] + 1 + pad]


def to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """Polyphase resampling to SAMPLE_RATE (exact rational ratio, no drift)."""
    g = np.gcd(SAMPLE_RATE, rate)
    return resample_poly(samples, SAMPLE_RATE // g, rate // g).astype(np.float32)


def synthesise(text: str, tmpdir: Path) -> np.ndarray:
    """Spoken text at 16 kHz, trimmed; long names are spoken faster instead of being cut."""
    speed = ESPEAK_BASE_SPEED
    while True:
        samples, rate = speak(text, speed, tmpdir)
        samples = trim_silence(samples, rate)
        seconds = len(samples) / rate
        if seconds <= MAX_SECONDS or speed >= ESPEAK_MAX_SPEED:
            break
        # Duration scales roughly inversely with speed; aim a bit below the limit.
        speed = min(ESPEAK_MAX_SPEED, int(np.ceil(speed * seconds / (0.95 * MAX_SECONDS))))
    samples = to_16k(samples, rate)
    peak = float(np.max(np.abs(samples))) or 1.0
    return samples * (PEAK_LEVEL / peak)


def _ogg_crc_table() -> list[int]:
    """CRC-32 as used by Ogg: polynomial 0x04C11DB7, not bit-reflected, initial value 0."""
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
        table.append(crc & 0xFFFFFFFF)
    return table


OGG_CRC_TABLE = _ogg_crc_table()


def ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ OGG_CRC_TABLE[(crc >> 24) ^ byte]
    return crc


def fix_ogg_serial(data: bytes, serial: int) -> bytes:
    """Replace the Ogg stream serial number on every page and recompute the page CRCs.

    libsndfile picks a random serial number per file, which is the only thing
    that would make two builds differ byte for byte.
    """
    out, pos = bytearray(), 0
    while pos < len(data):
        if data[pos:pos + 4] != b"OggS":
            raise ValueError("not an Ogg page")
        n_segments = data[pos + 26]
        body = sum(data[pos + 27: pos + 27 + n_segments])
        page = bytearray(data[pos: pos + 27 + n_segments + body])
        page[14:18] = serial.to_bytes(4, "little")
        page[22:26] = b"\0\0\0\0"
        page[22:26] = ogg_crc(page).to_bytes(4, "little")
        out += page
        pos += len(page)
    return bytes(out)


def render_audio(text: str, path: Path, tmpdir: Path) -> float:
    """Write the spoken text as Ogg/Opus, check it decodes, return its duration in seconds."""
    samples = synthesise(text, tmpdir)
    buffer = io.BytesIO()
    sf.write(buffer, samples, SAMPLE_RATE, format="OGG", subtype="OPUS",
             compression_level=OPUS_COMPRESSION_LEVEL)
    # A serial derived from the file name keeps streams distinct yet reproducible.
    path.write_bytes(fix_ogg_serial(buffer.getvalue(), zlib.crc32(path.name.encode())))
    decoded, rate = sf.read(path, dtype="float32")
    if rate != SAMPLE_RATE or decoded.ndim != 1 or len(decoded) == 0:
        raise RuntimeError(f"{path} does not read back as 16 kHz mono")
    return len(decoded) / rate


# --- Splitting and writing --------------------------------------------------------
def stratified_split(records: list[dict]) -> dict[str, list[dict]]:
    """80/10/10 per label with a seeded shuffle; each split is itself shuffled.

    Shuffled (not sorted) output means that reading only the first N lines of a
    manifest still gives a mix of classes.
    """
    rng = random.Random(SEED)
    by_label = defaultdict(list)
    for rec in sorted(records, key=lambda r: r["id"]):
        by_label[rec["label"]].append(rec)
    splits = {"train": [], "val": [], "test": []}
    for label in sorted(by_label):
        items = by_label[label]
        rng.shuffle(items)
        n_val = round(len(items) * SPLIT_FRACTIONS["val"])
        n_test = round(len(items) * SPLIT_FRACTIONS["test"])
        splits["val"] += items[:n_val]
        splits["test"] += items[n_val:n_val + n_test]
        splits["train"] += items[n_val + n_test:]
    for items in splits.values():
        rng.shuffle(items)
    return splits


def public(rec: dict) -> dict:
    return {k: rec[k] for k in MANIFEST_FIELDS}


def write_jsonl(path: Path, records: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for rec in records:
            f.write(json.dumps(public(rec), ensure_ascii=False) + "\n")


def write_csv(path: Path, records: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(public(rec) for rec in records)


def clean_output(out: Path) -> None:
    """Remove previously generated files only (build.py, README etc. stay)."""
    for sub in ("images", "audio"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True)
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "train.csv"):
        (out / name).unlink(missing_ok=True)


# --- Reporting --------------------------------------------------------------------
def print_summary(splits: dict[str, list[dict]], durations: list[float], out: Path) -> None:
    labels = sorted({r["label"] for items in splits.values() for r in items})
    counts = {s: Counter(r["label"] for r in items) for s, items in splits.items()}
    print("\n| label | train | val | test | total |\n|---|---:|---:|---:|---:|")
    for label in labels + ["**total**"]:
        row = [sum(counts[s].values()) if label == "**total**" else counts[s][label] for s in splits]
        print(f"| {label} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    d = np.array(durations)
    print(f"\naudio seconds: min {d.min():.2f}  median {np.median(d):.2f}  max {d.max():.2f}  "
          f"(> {MAX_SECONDS} s: {(d > MAX_SECONDS + 1e-6).sum()})")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"output size (all files in {out}): {total / 1e6:.2f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="parallel espeak-ng/encoder workers (does not change the output)")
    args = parser.parse_args()
    out = args.out.resolve()

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        tarballs = npm_pack(tmpdir)
        google = read_tar_members(
            tarballs["emoji-datasource-google@16.0.0"],
            lambda n: n == "package/emoji.json" or n.startswith(IMAGE_DIR_IN_TARBALL))
        base = read_tar_members(
            tarballs["emojibase-data@17.0.0"],
            lambda n: n in ("package/en/data.json", "package/en/messages.json"))

        images = {n[len(IMAGE_DIR_IN_TARBALL):]: b for n, b in google.items()
                  if n.startswith(IMAGE_DIR_IN_TARBALL)}
        index = build_image_index(json.loads(google["package/emoji.json"]), images)
        candidates = select_emojis(json.loads(base["package/en/data.json"]),
                                   json.loads(base["package/en/messages.json"]))

        records, missing = [], []
        for rec in candidates:
            image = find_image(rec["id"], images, index)
            (records if image else missing).append(rec)
            rec["_png"] = image
        print(f"{len(candidates)} base emojis selected; {len(missing)} dropped without a Google image: "
              + ", ".join(f"{r['id']} ({r['_name']})" for r in missing))
        print(f"{sum(1 for r in records if not r['text'])} records without tags (empty text)")

        clean_output(out)
        for rec in records:
            render_image(images[rec["_png"]], out / rec["image"])
        with ThreadPoolExecutor(args.jobs) as pool:
            durations = list(pool.map(
                lambda r: render_audio(r["_name"], out / r["audio"], tmpdir), records))

    splits = stratified_split(records)
    for name, items in splits.items():
        write_jsonl(out / f"{name}.jsonl", items)
    write_csv(out / "train.csv", splits["train"])
    print(f"{len(records)} records: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
    print_summary(splits, durations, out)


if __name__ == "__main__":
    main()
