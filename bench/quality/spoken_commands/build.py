"""Build the `spoken_commands` quality set: 1 s spoken command words (12 classes, after Google
Speech Commands) synthesised by espeak-ng, flite and festival voices, in noise and rooms; the
test split's voices, two of its accents and one synthesiser family never occur in train/val.

Command (from the repository root)::

    .venv/bin/python bench/quality/spoken_commands/build.py [--out DIR] [--small]

Default DIR: `common.set_dir("spoken_commands")` (~/.cache/mmkeras/quality/spoken_commands).
Needs the Debian packages espeak-ng, flite, festival, festvox-kallpc16k, festvox-kdlpc16k and
festvox-us-slt-hts (`apt-get install -y ...`); their versions go into built.json. No network.

Output: audio/<split>/<id>.wav (16 kHz mono 16-bit PCM, exactly 1.0 s), train/val/test.jsonl
with columns audio, level_db, device_id, label (+ metadata: word, voice, engine, family,
noise, snr_db, rt60), config.yaml, built.json. Deterministic: every random draw comes from
a generator seeded by (SEED, record id).
"""
from __future__ import annotations

import hashlib
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.quality import common  # noqa: E402
from bench.quality.spoken_commands import speech  # noqa: E402

NAME = "spoken_commands"
SEED = 20240611
COMMANDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
# Speech Commands' auxiliary words (v1 and v2): spoken, but none of the commands.
UNKNOWN_WORDS = ["bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
                 "backward", "forward", "follow", "learn", "visual"]
UNKNOWN, SILENCE = "unknown", "silence"
CLASSES = COMMANDS + [UNKNOWN, SILENCE]
# Records per class and split: each command, unknown, silence.
SIZES = {"train": (240, 360, 240), "val": (40, 60, 40), "test": (120, 180, 120)}
SMALL_SIZES = {"train": (8, 12, 8), "val": (2, 3, 2), "test": (5, 8, 5)}
PUNCTUATION = ["", "", ".", "!", "?"]  # changes the synthesisers' intonation
CONDITIONS = speech.Conditions(snr_db=(5.0, 25.0), reverb_p=0.5)
DEVICES = 48


def rng_for(key: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(f"{SEED}:{key}".encode()).digest()[:8], "big"))


def plan(sizes) -> dict[str, list[dict]]:
    """The records of every split with their label, word, voice and prosody (no audio yet)."""
    pools = speech.voices_by_split()
    splits = {}
    for split, (per_cmd, n_unknown, n_silence) in sizes.items():
        labels = [c for c in COMMANDS for _ in range(per_cmd)] + [UNKNOWN] * n_unknown + [SILENCE] * n_silence
        order = rng_for(f"order:{split}").permutation(len(labels))
        recs = []
        for i, k in enumerate(order):
            rid = f"{split}-{i:05d}"
            rng = rng_for(rid)
            label = labels[k]
            rec = {"id": rid, "label": label, "split": split}
            if label != SILENCE:
                word = label if label != UNKNOWN else UNKNOWN_WORDS[rng.integers(len(UNKNOWN_WORDS))]
                voice = speech.pick_voice(rng, split, pools)
                rec["job"] = speech.Job(voice, word + PUNCTUATION[rng.integers(len(PUNCTUATION))],
                                        float(rng.uniform(0.75, 1.3)), float(rng.uniform(0, 1)))
                rec["word"] = word
            recs.append(rec)
        splits[split] = recs
    return splits


def build(out: Path, small: bool = False) -> None:
    start = time.time()
    speech.check_tools()
    common.clean_output(out)
    planned = plan(SMALL_SIZES if small else SIZES)
    all_recs = [r for s in common.SPLITS for r in planned[s]]
    babble = {s: speech.babble_jobs(rng_for(f"babble:{s}"), s, speech.voices_by_split(), 8 if small else 24)
              for s in common.SPLITS}
    jobs = [r["job"] for r in all_recs if "job" in r]
    babble_flat = [j for s in common.SPLITS for j in babble[s]]
    audio = speech.synthesize(jobs + babble_flat, workers=2)
    clean = dict(zip((id(j) for j in jobs), audio[: len(jobs)]))
    pool, k = {}, len(jobs)
    for s in common.SPLITS:
        pool[s] = audio[k:k + len(babble[s])]
        k += len(babble[s])
    synth_s = time.time() - start

    splits, squeezed = {}, 0
    for split in common.SPLITS:
        rows = []
        for rec in planned[split]:
            rng = rng_for("render:" + rec["id"])
            job = rec.get("job")
            wav, meta = speech.render(rng, clean[id(job)] if job else None, pool[split], CONDITIONS)
            squeezed += meta["squeezed"]
            rel = f"audio/{split}/{rec['id']}.wav"
            speech.write_wav(out / rel, wav)
            rows.append({
                "id": rec["id"], "audio": rel,
                "level_db": round(speech.rms_db(speech.to_int16(wav) / 32767.0), 1),
                "device_id": int(rng.integers(1, DEVICES + 1)),
                "label": rec["label"], "word": rec.get("word", ""),
                "voice": job.voice.id if job else "", "engine": job.voice.engine if job else "",
                "family": job.voice.family if job else "",
                "noise": meta["noise"], "snr_db": meta["snr_db"], "rt60": meta["rt60"],
            })
        splits[split] = rows

    voices = {s: sorted({r["voice"] for r in splits[s] if r["voice"]}) for s in common.SPLITS}
    overlap = set(voices["test"]) & (set(voices["train"]) | set(voices["val"]))
    assert not overlap, overlap
    config = {
        "name": NAME,
        "inputs": [
            {"name": "speech", "type": "audio", "column": "audio", "sample_rate": speech.SAMPLE_RATE,
             "seconds": 1.0},
            {"name": "stats", "type": "numeric", "columns": ["level_db", "device_id"]},
        ],
        "outputs": [{"name": "command", "type": "category", "column": "label"}],
    }
    info = {
        "classes": CLASSES,
        "per_class": {s: dict(sorted(Counter(r["label"] for r in splits[s]).items())) for s in common.SPLITS},
        "per_engine": {s: dict(sorted(Counter(r["engine"] or "(silence)" for r in splits[s]).items()))
                       for s in common.SPLITS},
        "voices_used": {s: len(voices[s]) for s in common.SPLITS},
        "test_voices": voices["test"],
        "squeezed_to_fit": squeezed,
        "sources": {"debian": speech.tool_versions()},
        "seed": SEED, "small": small,
        "synthesis_seconds": round(synth_s, 1), "build_seconds": round(time.time() - start, 1),
    }
    common.write_set(out, splits, config, info)


if __name__ == "__main__":
    common.main(NAME, build, __doc__)
