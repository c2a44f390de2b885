"""Build the `emoji_multilingual` quality set: an emoji's CLDR annotation in one of 8 languages
+ three numbers → emoji group.

Command (from the repository root)::

    .venv/bin/python bench/quality/emoji_multilingual/build.py            # into common.set_dir("emoji_multilingual")
    .venv/bin/python bench/quality/emoji_multilingual/build.py --out DIR  # into DIR
    .venv/bin/python bench/quality/emoji_multilingual/build.py --small    # ≤ 200 records, for quick checks

Needs `npm` (pinned tarballs, see emoji_vendors/emoji_sources.PACKAGES: the CLDR annotation
packages, and emoji-datasource-twitter for its emoji.json) and Python with PyYAML.

One record per (emoji, language). The text is the CLDR short name ("tts") followed by one
of the emoji's CLDR keywords that is not already in the name (if any), in that language. The
numbers are the Unicode emoji version the emoji was added in (0.6–16.0), its number of code
points in fully qualified form (1–10) and its first code point (35–129784). The emojis are
split by concept (gendered and direction variants of one emoji stay together). Training and
validation use 7 languages, 3 per emoji; the test split holds *other* emojis, each once in
Swedish (a language absent from training and validation) and once in one of the 7.
Each manifest line::

    {"id": "1F407-fr", "emoji": "1F407", "lang": "fr", "text": "lapin animal",
     "emoji_version": 1.0, "codepoints": 1, "first_codepoint": 128007,
     "label": "Animals & Nature", "subgroup": "animal-mammal"}

`lang`, `emoji`, `subgroup` are for analysis only (per-language results); the config's inputs
are `text` and `numbers` (`emoji_version`, `codepoints`, `first_codepoint`), the output `label`.
"""
from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench.quality` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.quality import common  # noqa: E402
from bench.quality.emoji_vendors import emoji_sources as src  # noqa: E402

NAME = "emoji_multilingual"
SEED = 20250612
TRAIN_LANGS = ("de", "fr", "es", "it", "nl", "pt", "pl")  # train, validation and test
HELD_OUT_LANG = "sv"  # test only
LANGS_PER_EMOJI = {"train": 3, "val": 3, "test": 1}  # from TRAIN_LANGS; test adds HELD_OUT_LANG
KEYWORDS = 1  # CLDR keywords appended to the short name (keeps ~97 % of texts within 16 WordPiece tokens)
FRACTIONS = (0.59, 0.10, 0.31)  # of the emojis, by concept group
SMALL = {"train": 120, "val": 40, "test": 40}
PACKAGES = {spec: src.PACKAGES[spec] for spec in
            (src.METADATA_PACKAGE, "cldr-annotations-full@48.2.0", "cldr-annotations-derived-full@48.2.0")}


def annotation_text(ann: dict, key: str) -> str:
    """Short name + up to KEYWORDS keywords not already in it, picked in a fixed pseudo-random order."""
    name = src.clean_text(ann["tts"])
    extra = [k for k in ann["keywords"] if k.lower() not in name.lower()]
    extra.sort(key=lambda k: common.stable_fraction(f"{key}:{k}", SEED))
    return " ".join([name, *(src.clean_text(k) for k in extra[:KEYWORDS])])


def plan_records(emojis: list[dict], names_en: dict[str, str], annotations: dict[str, dict]) -> dict:
    by_split = common.group_split(emojis, lambda e: src.concept_key(names_en[e["hexcode"]]), FRACTIONS, SEED)
    splits = {}
    for split, items in by_split.items():
        records = []
        for e in items:
            hexcode = e["hexcode"]
            have = [lang for lang in TRAIN_LANGS if src.annotation(annotations[lang], hexcode)]
            have.sort(key=lambda lang: common.stable_fraction(f"{hexcode}:{lang}", SEED))
            langs = have[: LANGS_PER_EMOJI[split]]
            if split == "test" and src.annotation(annotations[HELD_OUT_LANG], hexcode):
                langs.append(HELD_OUT_LANG)
            for lang in langs:
                records.append({
                    "id": f"{hexcode}-{lang}",
                    "emoji": hexcode,
                    "lang": lang,
                    "text": annotation_text(src.annotation(annotations[lang], hexcode), f"{hexcode}:{lang}"),
                    "emoji_version": e["version"],
                    "codepoints": e["codepoints"],
                    "first_codepoint": e["first_codepoint"],
                    "label": e["category"],
                    "subgroup": e["subcategory"],
                })
        records.sort(key=lambda r: common.stable_fraction(r["id"], SEED))
        splits[split] = records
    return splits


def build(out: Path, small: bool = False) -> None:
    start = time.time()
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        tarballs = common.npm_pack(PACKAGES, Path(tmp))
        emojis = src.read_emojis(tarballs[src.METADATA_PACKAGE])
        annotations = src.read_annotations(tarballs["cldr-annotations-full@48.2.0"],
                                           tarballs["cldr-annotations-derived-full@48.2.0"],
                                           ["en", *TRAIN_LANGS, HELD_OUT_LANG])
    names_en = {}
    for e in emojis:
        ann = src.annotation(annotations["en"], e["hexcode"])
        if ann is None:
            raise SystemExit(f"{e['hexcode']}: no English CLDR annotation")
        names_en[e["hexcode"]] = ann["tts"]

    splits = plan_records(emojis, names_en, annotations)
    if small:
        splits = {s: recs[: SMALL[s]] for s, recs in splits.items()}
    common.clean_output(out)

    config = {
        "name": NAME,
        "inputs": [
            {"name": "text", "type": "text", "column": "text", "max_tokens": 16, "vocab_size": 2000},
            {"name": "numbers", "type": "numeric", "columns": ["emoji_version", "codepoints", "first_codepoint"]},
        ],
        "outputs": [{"name": "label", "type": "category", "column": "label"}],
    }
    info = {
        "task": "CLDR emoji annotation (8 languages) + emoji version, code point count, first code point "
                "-> emoji group (9 classes)",
        "shift": f"test: unseen emojis (split by concept), once in {HELD_OUT_LANG} (absent from train/val) "
                 f"and once in one of {', '.join(TRAIN_LANGS)}",
        "small": small,
        "seed": SEED,
        "train_langs": list(TRAIN_LANGS),
        "held_out_lang": HELD_OUT_LANG,
        "fractions_by_emoji": dict(zip(common.SPLITS, FRACTIONS)),
        "sources": {spec: {"sha1": sha1, "licence": src.LICENCES[spec]} for spec, sha1 in PACKAGES.items()},
        "per_split": {s: {"labels": dict(sorted(Counter(r["label"] for r in recs).items())),
                          "langs": dict(sorted(Counter(r["lang"] for r in recs).items())),
                          "emojis": len({r["emoji"] for r in recs})}
                      for s, recs in splits.items()},
    }
    common.write_set(out, splits, config, info)
    print(f"built in {time.time() - start:.0f} s")


if __name__ == "__main__":
    common.main(NAME, build, __doc__)
