"""Build the `sort_of_clevr` quality set: relational visual question answering on
synthetic scenes, by the rules of Sort-of-CLEVR (Santoro et al. 2017).

Command (from the repository root)::

    .venv/bin/python bench/quality/sort_of_clevr/build.py            # into common.set_dir("sort_of_clevr")
    .venv/bin/python bench/quality/sort_of_clevr/build.py --out DIR  # into DIR
    .venv/bin/python bench/quality/sort_of_clevr/build.py --small    # ≤ 200 records, for quick checks

Needs only Python with Pillow, NumPy and PyYAML: every scene is drawn here from a seed.

A scene is a 75×75 RGB picture on white holding six objects, one of each colour (red, green,
blue, orange, gray, yellow), each a square or a circle of side 10, placed so no two overlap.
Every scene gets QUESTIONS_PER_SCENE templated English questions, half non-relational and half
relational, each naming one of the six colours:

    non-relational  shape     "what shape is the red object?"                        square | circle
                    leftright "is the red object on the left or on the right?"       left | right
                    topbottom "is the red object at the top or at the bottom?"       top | bottom
    relational      closest   "what shape is the object closest to the red object?"  square | circle
                    furthest  "what shape is the object furthest from the red object?"
                    count     "how many objects have the same shape as the red object?"  1 … 6

One manifest line per question::

    {"id": "s00012-q3", "scene": 12, "image": "images/s00012.png",
     "question": "what shape is the object closest to the red object?", "answer": "circle",
     "qtype": "closest", "relational": "relational"}

The config's inputs are `image` and `question`, the output `answer` (12 classes); `qtype` and
`relational` are for per-group metrics (`evaluation.group_by`). Splits are by scene: no test
scene is seen in training.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

if __package__ in (None, ""):  # run as a script: make `bench.quality` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.quality import common  # noqa: E402

NAME = "sort_of_clevr"
SEED = 20170605  # the Relation Networks paper's arXiv date
SIZE = 75
OBJECT = 10  # side of a square, diameter of a circle (the paper's scenes)
COLOURS = {"red": (255, 0, 0), "green": (0, 160, 0), "blue": (0, 0, 255),
           "orange": (255, 156, 0), "gray": (128, 128, 128), "yellow": (230, 210, 0)}
SCENES = {"train": 3000, "val": 250, "test": 500}  # × QUESTIONS_PER_SCENE: 30 000 training questions
QUESTIONS_PER_SCENE = 10
SMALL = {"train": 12, "val": 4, "test": 4}  # scenes: ≤ 200 questions in all
NON_RELATIONAL = ("shape", "leftright", "topbottom")
RELATIONAL = ("closest", "furthest", "count")
TEMPLATES = {
    "shape": "what shape is the {} object?",
    "leftright": "is the {} object on the left or on the right?",
    "topbottom": "is the {} object at the top or at the bottom?",
    "closest": "what shape is the object closest to the {} object?",
    "furthest": "what shape is the object furthest from the {} object?",
    "count": "how many objects have the same shape as the {} object?",
}


def place_objects(rng: np.random.Generator) -> list[dict]:
    """Six objects, one per colour, centres ≥ OBJECT·1.5 apart and ≥ OBJECT/2 from the border."""
    half = OBJECT / 2
    objects = []
    for colour in COLOURS:
        while True:
            centre = rng.uniform(half, SIZE - half, size=2)
            if all(np.hypot(*(centre - o["centre"])) >= 1.5 * OBJECT for o in objects):
                break
        objects.append({"colour": colour, "centre": centre, "shape": "square" if rng.random() < 0.5 else "circle"})
    return objects


def draw(objects: list[dict]) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    pen = ImageDraw.Draw(image)
    for o in objects:
        x, y = o["centre"]
        box = [x - OBJECT / 2, y - OBJECT / 2, x + OBJECT / 2, y + OBJECT / 2]
        (pen.rectangle if o["shape"] == "square" else pen.ellipse)(box, fill=COLOURS[o["colour"]])
    return image


def answer(objects: list[dict], qtype: str, colour: str) -> str:
    """The ground truth of a question about the object of `colour` (image y grows downwards)."""
    subject = next(o for o in objects if o["colour"] == colour)
    others = [o for o in objects if o is not subject]
    x, y = subject["centre"]
    if qtype == "shape":
        return subject["shape"]
    if qtype == "leftright":
        return "left" if x < SIZE / 2 else "right"
    if qtype == "topbottom":
        return "top" if y < SIZE / 2 else "bottom"
    distance = {id(o): np.hypot(*(o["centre"] - subject["centre"])) for o in others}
    if qtype == "closest":
        return min(others, key=lambda o: distance[id(o)])["shape"]
    if qtype == "furthest":
        return max(others, key=lambda o: distance[id(o)])["shape"]
    return str(sum(o["shape"] == subject["shape"] for o in objects))  # count, the subject included


def scene_questions(rng: np.random.Generator, objects: list[dict]) -> list[tuple[str, str]]:
    """QUESTIONS_PER_SCENE (qtype, colour) pairs: half non-relational, half relational, random types and colours."""
    half = QUESTIONS_PER_SCENE // 2
    kinds = [*rng.choice(NON_RELATIONAL, half), *rng.choice(RELATIONAL, QUESTIONS_PER_SCENE - half)]
    return [(str(k), str(rng.choice(list(COLOURS)))) for k in kinds]


def build(out: Path, small: bool = False) -> None:
    start = time.time()
    out = Path(out)
    common.clean_output(out)
    (out / "images").mkdir()
    rng = np.random.default_rng(SEED)
    splits, scene = {}, 0
    for split in common.SPLITS:
        records = []
        for _ in range((SMALL if small else SCENES)[split]):
            objects = place_objects(rng)
            path = f"images/s{scene:05d}.png"
            draw(objects).save(out / path)
            for q, (qtype, colour) in enumerate(scene_questions(rng, objects)):
                records.append({"id": f"s{scene:05d}-q{q}", "scene": scene, "image": path,
                                "question": TEMPLATES[qtype].format(colour), "answer": answer(objects, qtype, colour),
                                "qtype": qtype,
                                "relational": "relational" if qtype in RELATIONAL else "non-relational"})
            scene += 1
        splits[split] = records

    config = {
        "name": NAME,
        "inputs": [
            {"name": "image", "type": "image", "column": "image", "size": [SIZE, SIZE], "channels": 3},
            {"name": "question", "type": "text", "column": "question", "max_tokens": 16, "vocab_size": 100},
        ],
        "outputs": [{"name": "answer", "type": "category", "column": "answer"}],
        "evaluation": {"group_by": ["qtype", "relational"]},
    }
    info = {
        "task": "Sort-of-CLEVR scene (75x75, 6 coloured squares/circles) + templated question -> answer (12 classes)",
        "shift": "test: unseen scenes",
        "small": small,
        "seed": SEED,
        "scenes": dict(SMALL if small else SCENES),
        "questions_per_scene": QUESTIONS_PER_SCENE,
        "sources": {"generated": {"licence": "generated by this script (no third-party data)"}},
        "per_split": {s: {"answers": dict(sorted(Counter(r["answer"] for r in recs).items())),
                          "qtypes": dict(sorted(Counter(r["qtype"] for r in recs).items()))}
                      for s, recs in splits.items()},
        "build_seconds": None,
    }
    info["build_seconds"] = round(time.time() - start, 1)
    common.write_set(out, splits, config, info)


if __name__ == "__main__":
    common.main(NAME, build, __doc__)
