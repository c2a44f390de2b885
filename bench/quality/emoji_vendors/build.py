"""Build the `emoji_vendors` quality set: emoji picture + English CLDR name → emoji group.

Command (from the repository root)::

    .venv/bin/python bench/quality/emoji_vendors/build.py            # into common.set_dir("emoji_vendors")
    .venv/bin/python bench/quality/emoji_vendors/build.py --out DIR  # into DIR
    .venv/bin/python bench/quality/emoji_vendors/build.py --small    # ≤ 200 records, for quick checks

Needs `npm` (the pinned tarballs of emoji_sources.PACKAGES are fetched with `npm pack`),
`rsvg-convert` (Debian package librsvg2-bin, to rasterise OpenMoji's SVGs) and Python with
Pillow and PyYAML.

One record per (emoji, image source). The emojis are split by concept (gendered and
direction variants of one emoji stay together): train and validation show emojis drawn by
Twitter (Twemoji), Facebook and OpenMoji; the test split shows *other* emojis, drawn by
Apple, a source never seen in training. Each manifest line::

    {"id": "1F407-twitter", "emoji": "1F407", "vendor": "twitter", "image": "images/twitter/1f407.png",
     "text": "rabbit", "label": "Animals & Nature", "subgroup": "animal-mammal"}

`vendor`, `emoji` and `subgroup` are there for analysis only; the config's inputs are
`image` and `text`, the output `label` (9 groups).
"""
from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench.quality` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.quality import common  # noqa: E402
from bench.quality.emoji_vendors import emoji_sources as src  # noqa: E402

NAME = "emoji_vendors"
SEED = 20250611
IMAGE_SIZE = 48
TRAIN_VENDORS = ("twitter", "facebook", "openmoji")  # train and validation images
TEST_VENDOR = "apple"
# Of the 1906 emojis (by concept group): 36.5 % train, 8.5 % validation, 55 % test, so that
# 3 training sources give ~2100 train records and one test source ~1000 test records.
FRACTIONS = (0.365, 0.085, 0.55)
SMALL = {"train": 120, "val": 40, "test": 40}
JOBS = 2  # rsvg-convert / PNG encoding threads (does not change the output)


def plan_records(emojis: list[dict], names: dict[str, str], available: dict[str, set[str]]) -> dict:
    """The records of each split (no files yet), each split in a fixed shuffled order."""
    by_split = common.group_split(emojis, lambda e: src.concept_key(names[e["hexcode"]]), FRACTIONS, SEED)
    splits = {}
    for split, items in by_split.items():
        vendors = (TEST_VENDOR,) if split == "test" else TRAIN_VENDORS
        records = []
        for e in items:
            for vendor in vendors:
                if e["hexcode"] not in available[vendor]:
                    continue
                records.append({
                    "id": f"{e['hexcode']}-{vendor}",
                    "emoji": e["hexcode"],
                    "vendor": vendor,
                    "image": f"images/{vendor}/{e['hexcode'].lower()}.png",
                    "text": src.clean_text(names[e["hexcode"]]),
                    "label": e["category"],
                    "subgroup": e["subcategory"],
                })
        records.sort(key=lambda r: common.stable_fraction(r["id"], SEED))
        splits[split] = records
    return splits


def build(out: Path, small: bool = False) -> None:
    start = time.time()
    src.rsvg_convert()  # fail before downloading anything
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        specs = dict(src.PACKAGES)
        tarballs = common.npm_pack(specs, Path(tmp))
        emojis = src.read_emojis(tarballs[src.METADATA_PACKAGE])
        english = src.read_annotations(tarballs["cldr-annotations-full@48.2.0"],
                                       tarballs["cldr-annotations-derived-full@48.2.0"], ["en"])["en"]
        names = {}
        for e in emojis:
            ann = src.annotation(english, e["hexcode"])
            if ann is None:
                raise SystemExit(f"{e['hexcode']}: no English CLDR annotation")
            names[e["hexcode"]] = ann["tts"]

        pngs = {v: src.vendor_images(tarballs[f"emoji-datasource-{v}@16.0.0"], v)
                for v in ("twitter", "facebook", "apple")}
        svgs = src.openmoji_svgs(tarballs["openmoji@17.0.0"])
    available = {v: {e["hexcode"] for e in emojis if e["has_img"][v] and e["image"] in pngs[v]} for v in pngs}
    available["openmoji"] = {e["hexcode"] for e in emojis if src.strip_fe0f(e["hexcode"]) in svgs}
    image_name = {e["hexcode"]: e["image"] for e in emojis}

    splits = plan_records(emojis, names, available)
    if small:
        splits = {s: recs[: SMALL[s]] for s, recs in splits.items()}

    common.clean_output(out)

    def render(rec: dict) -> None:
        if rec["vendor"] == "openmoji":
            png = src.rasterise_svg(svgs[src.strip_fe0f(rec["emoji"])], 64)
        else:
            png = pngs[rec["vendor"]][image_name[rec["emoji"]]]
        src.write_png_on_white(png, out / rec["image"], IMAGE_SIZE)

    with ThreadPoolExecutor(JOBS) as pool:
        list(pool.map(render, [r for recs in splits.values() for r in recs]))

    config = {
        "name": NAME,
        "inputs": [
            {"name": "image", "type": "image", "column": "image", "size": [IMAGE_SIZE, IMAGE_SIZE], "channels": 3},
            {"name": "text", "type": "text", "column": "text", "max_tokens": 16, "vocab_size": 2000},
        ],
        "outputs": [{"name": "label", "type": "category", "column": "label"}],
    }
    info = {
        "task": "emoji picture + English CLDR short name -> emoji group (9 classes)",
        "shift": f"test: unseen emojis (split by concept), pictures by {TEST_VENDOR}; "
                 f"train/val: pictures by {', '.join(TRAIN_VENDORS)}",
        "small": small,
        "seed": SEED,
        "fractions_by_emoji": dict(zip(common.SPLITS, FRACTIONS)),
        "sources": {spec: {"sha1": sha1, "licence": src.LICENCES[spec]} for spec, sha1 in specs.items()},
        "tools": {"rsvg-convert": src.rsvg_version(), "debian_package": "librsvg2-bin"},
        "per_split": {s: {"labels": dict(sorted(Counter(r["label"] for r in recs).items())),
                          "vendors": dict(sorted(Counter(r["vendor"] for r in recs).items())),
                          "emojis": len({r["emoji"] for r in recs})}
                      for s, recs in splits.items()},
    }
    common.write_set(out, splits, config, info)
    print(f"built in {time.time() - start:.0f} s")


if __name__ == "__main__":
    common.main(NAME, build, __doc__)
