"""Synthetic speech for the quality suite: a voice inventory split by speaker, synthesis
through espeak-ng, flite and festival, and recording-condition augmentation.

Shared by `spoken_commands` and `digits_av`. A *voice* is one synthesiser setting that
sounds like one speaker: an espeak-ng accent with a voice variant, or one flite or
festival voice. Every voice belongs to exactly one split, chosen so the test split
hears speakers, accents and a synthesiser family that training never heard:

* espeak-ng: an (accent, variant) pair is used only when the accent's split and the
  variant's split agree. Accents: four for training, two for validation, two
  (Scottish, Caribbean) for test. Variants are grouped into families of near-copies
  (m1..m8, steph/steph2/steph3, whisper/whisperf, ...); a family stays in one split. The
  Klatt-synthesiser families are all test (a held-out synthesis method); the others are
  spread over the splits by a fixed hash.
* flite / festival: the human speakers behind the voices are the groups. kal
  (flite kal, flite kal16, festival kal_diphone), rms (flite) and slt (flite, festival
  HTS) train; awb (flite, Scottish male) and ked (festival diphone) are test only.
  Validation has espeak-ng voices only (there are not enough recorded speakers).

MBROLA voices would add recorded speakers, but Debian ships them in contrib/non-free
only, which this machine's apt sources do not carry.

All output is 16 kHz mono float32 in [-1, 1]; `write_wav` stores 16-bit PCM.
"""
from __future__ import annotations

import math
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import fftconvolve, resample_poly, butter, sosfilt

from bench.quality.common import stable_fraction

SAMPLE_RATE = 16_000
VOICE_SEED = 7  # fixes which espeak-ng variants go to which split

# espeak-ng English accents (voice names of espeak-ng 1.51) and their split.
ESPEAK_ACCENTS = {
    "en-gb": "train", "en-us": "train", "en-gb-x-rp": "train", "en-gb-x-gbclan": "train",
    "en-us-nyc": "val", "en-gb-x-gbcwmd": "val",
    "en-gb-scotland": "test", "en-029": "test",
}
# Variants (files in espeak-ng-data/voices/!v/) that use the Klatt synthesiser: test only.
KLATT_VARIANTS = ["UniRobot", "adam", "announcer", "benjamin", "caleb", "david", "edward", "edward2",
                  "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "robosoft", "robosoft2",
                  "robosoft3"]
# The other variants ("" = the accent's own default voice). Left out: "fast" (a test
# setting, not a voice) and "Mr serious" (a space in its name).
OTHER_VARIANTS = [
    "", "Alex", "Alicia", "Andrea", "Andy", "Annie", "AnxiousAndy", "Demonic", "Denis", "Diogo", "Gene",
    "Gene2", "Henrique", "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "Nguyen",
    "RicishayMax", "RicishayMax2", "RicishayMax3", "Storm", "Tweaky", "anika", "anikaRobot", "antonio",
    "aunty", "belinda", "boris", "croak", "ed", "f1", "f2", "f3", "f4", "f5", "grandma", "grandpa",
    "gustave", "iven", "iven2", "iven3", "iven4", "john", "kaukovalta", "linda", "m1", "m2", "m3", "m4",
    "m5", "m6", "m7", "m8", "marcelo", "max", "michel", "miguel", "norbert", "pablo", "paul", "pedro",
    "quincy", "rob", "robert", "robosoft4", "robosoft5", "robosoft6", "robosoft7", "robosoft8", "sandro",
    "shelby", "steph", "steph2", "steph3", "travis", "victor", "whisper", "whisperf", "zac",
]
# (engine, voice, speaker, split, f0 range in Hz or None when the voice takes no f0 setting)
RECORDED_VOICES = [
    ("flite", "kal", "kal", "train", (85, 140)),
    ("flite", "kal16", "kal", "train", (85, 140)),
    ("festival", "kal_diphone", "kal", "train", (85, 140)),
    ("flite", "rms", "rms", "train", (80, 135)),
    ("flite", "slt", "slt", "train", (150, 230)),
    ("festival", "cmu_us_slt_arctic_hts", "slt", "train", None),
    ("flite", "awb", "awb", "test", (85, 140)),
    ("festival", "ked_diphone", "ked", "test", (85, 140)),
]


@dataclass(frozen=True)
class Voice:
    id: str  # "espeak-ng:en-gb-scotland+klatt3", "flite:awb", "festival:ked_diphone"
    engine: str  # espeak-ng | flite | festival
    name: str  # what the engine is given
    speaker: str  # the group that never crosses splits
    family: str  # accent (espeak-ng) or engine, for reporting
    split: str
    f0: tuple | None = None


# Variants that are edits of one another (m1..m8, steph/steph2, whisper/whisperf, ...) form one
# family, and a family stays in one split, so no split hears a near-copy of another's voice.
FAMILY_ALIASES = {"whisperf": "whisper", "anikarobot": "anika", "anxiousandy": "andy"}


def variant_family(variant: str) -> str:
    base = variant.lower().rstrip("0123456789")
    return FAMILY_ALIASES.get(base, base)


KLATT_FAMILIES = {variant_family(v) for v in KLATT_VARIANTS}


def _family_splits() -> dict[str, str]:
    """Klatt families -> test; the other families in a fixed hashed order fill train up to
    70 % of those variants, then val up to 85 %, the rest test."""
    members: dict[str, int] = {}
    for v in OTHER_VARIANTS:
        if variant_family(v) not in KLATT_FAMILIES:
            members[variant_family(v)] = members.get(variant_family(v), 0) + 1
    order = sorted(members, key=lambda f: stable_fraction(f"variant-family:{f}", VOICE_SEED))
    total, done, out = sum(members.values()), 0, {f: "test" for f in KLATT_FAMILIES}
    for family in order:
        out[family] = "train" if done < 0.70 * total else "val" if done < 0.85 * total else "test"
        done += members[family]
    return out


def variant_split(variant: str) -> str:
    return _family_splits()[variant_family(variant)]


def voice_inventory() -> list[Voice]:
    voices = []
    for accent, split in ESPEAK_ACCENTS.items():
        for variant in OTHER_VARIANTS + KLATT_VARIANTS:
            if variant_split(variant) != split:
                continue
            name = accent + (f"+{variant}" if variant else "")
            voices.append(Voice(f"espeak-ng:{name}", "espeak-ng", name, name, f"espeak-ng {accent}", split))
    for engine, name, speaker, split, f0 in RECORDED_VOICES:
        voices.append(Voice(f"{engine}:{name}", engine, name, speaker, engine, split, f0))
    return voices


def voices_by_split() -> dict[str, dict[str, list[Voice]]]:
    """{split: {"espeak-ng": [...], "recorded": [...]}}: the two pools a record's voice is drawn from."""
    out = {s: {"espeak-ng": [], "recorded": []} for s in ("train", "val", "test")}
    for v in voice_inventory():
        out[v.split]["espeak-ng" if v.engine == "espeak-ng" else "recorded"].append(v)
    return out


def pick_voice(rng: np.random.Generator, split: str, pools, recorded_share: float = 0.4) -> Voice:
    """A voice of `split`: a flite/festival one with probability `recorded_share` (uniform over
    speakers, then over that speaker's voices), else a uniform espeak-ng voice."""
    pool = pools[split]
    if pool["recorded"] and rng.random() < recorded_share:
        speakers = sorted({v.speaker for v in pool["recorded"]})
        speaker = speakers[rng.integers(len(speakers))]
        options = [v for v in pool["recorded"] if v.speaker == speaker]
        return options[rng.integers(len(options))]
    return pool["espeak-ng"][rng.integers(len(pool["espeak-ng"]))]


# --- Synthesis -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    voice: Voice
    text: str
    rate: float  # 1.0 = the engine's default speaking rate; larger is faster
    pitch: float  # 0..1, mapped into the voice's pitch range (espeak-ng 0-99, flite/festival f0)


def _to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return audio
    g = math.gcd(rate, SAMPLE_RATE)
    return resample_poly(audio, SAMPLE_RATE // g, rate // g).astype(np.float32)


def _read_wav(path) -> np.ndarray:
    rate, data = wavfile.read(path)
    data = data.astype(np.float32) / 32768.0
    if data.ndim > 1:
        data = data.mean(axis=1)
    return _to_16k(data, rate)


def _espeak(job: Job) -> np.ndarray:
    speed = int(round(175 * job.rate))
    pitch = int(round(10 + 80 * job.pitch))
    raw = subprocess.run(["espeak-ng", "-v", job.voice.name, "-s", str(speed), "-p", str(pitch), "--stdout",
                          job.text], check=True, capture_output=True).stdout
    # espeak-ng writes a streaming WAV header (sizes 0x7fffffff): 44 bytes, then 16-bit PCM at 22050 Hz.
    rate = int.from_bytes(raw[24:28], "little")
    data = np.frombuffer(raw[44:44 + (len(raw) - 44) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    return _to_16k(data, rate)


def _flite(job: Job, tmp: Path) -> np.ndarray:
    fd, name = tempfile.mkstemp(suffix=".wav", dir=tmp)
    os.close(fd)
    path = Path(name)
    cmd = ["flite", "-voice", job.voice.name, "-t", job.text, "-o", str(path),
           "--setf", f"duration_stretch={1.0 / job.rate:.3f}"]
    if job.voice.f0:
        lo, hi = job.voice.f0
        cmd += ["--setf", f"int_f0_target_mean={lo + (hi - lo) * job.pitch:.1f}"]
    subprocess.run(cmd, check=True, capture_output=True)
    try:
        return _read_wav(path)
    finally:
        path.unlink(missing_ok=True)


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _festival_batch(jobs: list[Job], tmp: Path, tag: str) -> list[np.ndarray]:
    lines, paths = [], []
    current = None
    for i, job in enumerate(jobs):
        if job.voice.name != current:
            lines.append(f"(voice_{job.voice.name})")
            current = job.voice.name
        if job.voice.f0:
            lo, hi = job.voice.f0
            f0 = lo + (hi - lo) * job.pitch
            lines.append(f"(set! int_lr_params '((target_f0_mean {f0:.1f}) (target_f0_std 14) "
                         "(model_f0_mean 170) (model_f0_std 34)))")
        lines.append(f"(Parameter.set 'Duration_Stretch {1.0 / job.rate:.3f})")
        path = tmp / f"fest-{tag}-{i}.wav"
        paths.append(path)
        lines.append(f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(job.text)})) \"{path}\" 'riff)")
    script = tmp / f"fest-{tag}.scm"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    subprocess.run(["festival", "-b", str(script)], check=True, capture_output=True)
    out = [_read_wav(p) for p in paths]
    for p in paths:
        p.unlink()
    return out


def synthesize(jobs: list[Job], workers: int = 2) -> list[np.ndarray]:
    """Clean, trimmed 16 kHz speech for every job, in order. espeak-ng and flite run one
    process per job on `workers` threads; festival runs in `workers` batch processes."""
    results: list[np.ndarray | None] = [None] * len(jobs)
    with tempfile.TemporaryDirectory(prefix="speech-") as tmpdir:
        tmp = Path(tmpdir)
        fest = [i for i, j in enumerate(jobs) if j.voice.engine == "festival"]
        # Sort festival jobs by voice so each batch switches voice rarely.
        fest.sort(key=lambda i: jobs[i].voice.name)
        chunks = [fest[k::workers] for k in range(workers)] if fest else []

        def run_one(i):
            job = jobs[i]
            audio = _espeak(job) if job.voice.engine == "espeak-ng" else _flite(job, tmp)
            results[i] = trim(audio)

        def run_fest(k):
            idx = sorted(chunks[k], key=lambda i: (jobs[i].voice.name, i))
            for i, audio in zip(idx, _festival_batch([jobs[i] for i in idx], tmp, str(k))):
                results[i] = trim(audio)

        with ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(run_fest, k) for k in range(len(chunks)) if chunks[k]]
            futures += [pool.submit(run_one, i) for i, j in enumerate(jobs) if j.voice.engine != "festival"]
            for f in futures:
                f.result()
    return results


def trim(audio: np.ndarray, threshold_db: float = -40.0, pad_s: float = 0.02) -> np.ndarray:
    """Cut leading/trailing parts quieter than `threshold_db` below the peak (10 ms frames)."""
    audio = np.asarray(audio, dtype=np.float32)
    frame = SAMPLE_RATE // 100
    n = len(audio) // frame
    if n == 0:
        return audio
    energy = np.sqrt((audio[: n * frame].reshape(n, frame) ** 2).mean(axis=1) + 1e-12)
    loud = np.where(20 * np.log10(energy / (energy.max() + 1e-12)) > threshold_db)[0]
    if len(loud) == 0:
        return audio
    pad = int(pad_s * SAMPLE_RATE)
    start = max(0, loud[0] * frame - pad)
    end = min(len(audio), (loud[-1] + 1) * frame + pad)
    return audio[start:end]


# --- Recording conditions ----------------------------------------------------------------------

def tape_speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster: pitch, formants and tempo all scale (a different vocal tract)."""
    down = int(round(200 * factor))
    return resample_poly(audio, 200, down).astype(np.float32)


def colored_noise(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """Unit-RMS white, pink (1/f) or brown (1/f^2) noise."""
    white = rng.standard_normal(n)
    if kind != "white":
        spec = np.fft.rfft(white)
        f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        f[0] = f[1]
        spec /= np.sqrt(f) if kind == "pink" else f
        spec[f < 20] = 0  # no DC or sub-audio rumble
        white = np.fft.irfft(spec, n)
    return (white / (np.sqrt(np.mean(white ** 2)) + 1e-12)).astype(np.float32)


def hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mains hum (50 or 60 Hz with harmonics) plus a little white noise, unit RMS."""
    base = 50.0 if rng.random() < 0.5 else 60.0
    t = np.arange(n) / SAMPLE_RATE
    x = sum((0.6 ** k) * np.sin(2 * np.pi * base * (k + 1) * t + rng.uniform(0, 2 * np.pi)) for k in range(6))
    x = x + 0.2 * rng.standard_normal(n)
    return (x / np.sqrt(np.mean(x ** 2))).astype(np.float32)


def babble(rng: np.random.Generator, n: int, pool: list[np.ndarray], talkers: int) -> np.ndarray:
    """`talkers` clips from `pool` (speech of the record's own split) overlapped, unit RMS."""
    out = np.zeros(n, dtype=np.float32)
    for _ in range(talkers):
        clip = pool[rng.integers(len(pool))]
        clip = clip / (np.sqrt(np.mean(clip ** 2)) + 1e-9)
        # Loop the clip over the window from a random phase.
        reps = int(np.ceil((n + len(clip)) / len(clip)))
        tiled = np.tile(clip, reps)
        start = rng.integers(len(clip))
        out += tiled[start:start + n] * rng.uniform(0.5, 1.0)
    return out / (np.sqrt(np.mean(out ** 2)) + 1e-9)


def make_noise(rng: np.random.Generator, n: int, kind: str, babble_pool: list[np.ndarray]) -> np.ndarray:
    if kind == "babble":
        return babble(rng, n, babble_pool, int(rng.integers(3, 7)))
    if kind == "hum":
        return hum(rng, n)
    return colored_noise(rng, n, kind)


def reverb(rng: np.random.Generator, audio: np.ndarray, rt60: float) -> np.ndarray:
    """Convolve with a synthetic room: a direct path plus exponentially decaying noise."""
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail[: int(0.002 * SAMPLE_RATE)] = 0  # early gap before the first reflections
    drr = 10 ** (rng.uniform(-3, 9) / 10)  # direct-to-reverberant energy ratio, -3..9 dB
    tail *= 1.0 / np.sqrt(drr * np.sum(tail ** 2) + 1e-12)
    ir = np.concatenate([[1.0], tail[1:]])
    wet = fftconvolve(audio, ir)[: len(audio) + n // 2]
    return wet.astype(np.float32)


def band_limit(audio: np.ndarray, low: float, high: float) -> np.ndarray:
    """A cheap microphone/channel: a 4th-order Butterworth band-pass."""
    sos = butter(4, [low, high], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return sosfilt(sos, audio).astype(np.float32)


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)) + 1e-10))


def active_rms(x: np.ndarray) -> float:
    """RMS over the louder half of 10 ms frames: the speech level, not diluted by pauses."""
    frame = SAMPLE_RATE // 100
    n = max(1, len(x) // frame)
    e = (x[: n * frame].reshape(n, frame) ** 2).mean(axis=1) if len(x) >= frame else np.array([np.mean(x ** 2)])
    e = np.sort(e)[len(e) // 2:]
    return float(np.sqrt(e.mean() + 1e-12))


def place(rng: np.random.Generator, speech: np.ndarray, n: int) -> tuple[np.ndarray, bool]:
    """Put `speech` at a random offset in an n-sample window; squeeze it (faster tape) if too long."""
    squeezed = False
    if len(speech) > n - 160:
        speech = tape_speed(speech, len(speech) / (n - 160))
        squeezed = True
    out = np.zeros(n, dtype=np.float32)
    start = int(rng.integers(0, n - len(speech) + 1))
    out[start:start + len(speech)] = speech
    return out, squeezed


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def write_wav(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, SAMPLE_RATE, to_int16(audio))


def tool_versions() -> dict:
    """Versions of the synthesisers as Debian installed them (recorded in built.json)."""
    pkgs = ["espeak-ng", "espeak-ng-data", "flite", "festival", "festvox-kallpc16k", "festvox-kdlpc16k",
            "festvox-us-slt-hts"]
    out = {}
    for p in pkgs:
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", p], capture_output=True, text=True)
        out[p] = r.stdout.strip() if r.returncode == 0 else None
    return out


def check_tools() -> None:
    missing = [p for p, v in tool_versions().items() if not v]
    if missing:
        raise SystemExit("missing Debian packages: " + " ".join(missing)
                         + " (apt-get install -y espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k"
                           " festvox-us-slt-hts)")


# --- One recording ------------------------------------------------------------------------------

# Background talk for babble noise: no command word, no digit, no filler word of the sets.
BABBLE_PHRASES = [
    "the weather looks lovely this morning", "could you pass me that book please",
    "we had dinner with her family", "my brother lives in a small village",
    "I think the meeting was cancelled", "she bought a new bicycle yesterday",
    "the children were playing outside", "what time does the train leave",
    "there is a cafe near the station", "they painted the kitchen blue",
    "he forgot his umbrella again", "this soup tastes wonderful",
    "the library closes early", "we watched a film last week",
    "her garden is full of roses", "the bus was very crowded today",
]
NOISE_KINDS = ("white", "pink", "brown", "babble", "hum")
NOISE_WEIGHTS = (0.2, 0.25, 0.2, 0.25, 0.1)


@dataclass(frozen=True)
class Conditions:
    """Ranges of the recording conditions drawn for each record."""
    snr_db: tuple = (0.0, 20.0)  # active speech level over noise RMS
    speech_dbfs: tuple = (-32.0, -14.0)  # active speech level of the final clip
    silence_dbfs: tuple = (-55.0, -28.0)  # noise level of a noise-only clip
    tape: tuple = (0.9, 1.12)  # tape-speed factor (pitch, formants and tempo)
    reverb_p: float = 0.5
    rt60: tuple = (0.15, 0.8)
    band_p: float = 0.25  # cheap-microphone band-pass


def babble_jobs(rng: np.random.Generator, split: str, pools, n: int = 24) -> list[Job]:
    return [Job(pick_voice(rng, split, pools), BABBLE_PHRASES[rng.integers(len(BABBLE_PHRASES))],
                float(rng.uniform(0.85, 1.2)), float(rng.uniform(0, 1))) for _ in range(n)]


def render(rng: np.random.Generator, speech: np.ndarray | None, babble_pool: list[np.ndarray],
           cond: Conditions, seconds: float = 1.0) -> tuple[np.ndarray, dict]:
    """One `seconds`-long recording: `speech` (None: noise only) through tape speed, an optional
    band-pass and room, placed at a random offset, at a random level, in noise at a random SNR."""
    n = int(seconds * SAMPLE_RATE)
    meta = {}
    kind = NOISE_KINDS[rng.choice(len(NOISE_KINDS), p=NOISE_WEIGHTS)]
    noise = make_noise(rng, n, kind, babble_pool)
    meta["noise"] = kind
    if speech is None:
        level = rng.uniform(*cond.silence_dbfs)
        out = noise * 10 ** (level / 20)
        meta.update(snr_db=None, rt60=None, tape=None, squeezed=False)
    else:
        tape = float(rng.uniform(*cond.tape))
        x = tape_speed(speech, tape)
        if rng.random() < cond.band_p:
            x = band_limit(x, rng.uniform(150, 400), rng.uniform(3000, 5500))
        rt60 = None
        if rng.random() < cond.reverb_p:
            rt60 = float(rng.uniform(*cond.rt60))
            x = reverb(rng, x, rt60)
        x, squeezed = place(rng, x, n)
        level = 10 ** (rng.uniform(*cond.speech_dbfs) / 20)
        x *= level / (active_rms(x[np.abs(x) > 0]) if np.any(x) else 1.0)
        snr = float(rng.uniform(*cond.snr_db))
        out = x + noise * (level / 10 ** (snr / 20))
        meta.update(snr_db=round(snr, 1), rt60=None if rt60 is None else round(rt60, 2), tape=round(tape, 3),
                    squeezed=squeezed)
    peak = float(np.max(np.abs(out)))
    if peak > 0.99:
        out *= 0.99 / peak
    return out.astype(np.float32), meta
