"""Reading the pinned npm emoji packages, shared by the `emoji_vendors` and `emoji_multilingual` sets.

* emoji metadata (group, subgroup, Unicode emoji version, code points, image file name):
  `emoji.json` of emoji-datasource 16.0.0 (the same file, byte for byte, in every
  `emoji-datasource-<vendor>` package);
* vendor images: `package/img/<vendor>/64/<image>` of emoji-datasource-<vendor>, 64×64 RGBA PNG;
  OpenMoji's `package/color/svg/<HEXCODE>.svg` (rasterised with rsvg-convert);
* CLDR annotations (short name "tts" and keywords "default", per locale):
  cldr-annotations-full (single characters) and cldr-annotations-derived-full (sequences:
  flags, keycaps, ZWJ sequences), both CLDR 48.2.0.

The emojis are emoji-datasource's top-level entries (skin-tone variants live in their
`skin_variations` and are never visited) outside the "Component" group (skin-tone and hair
modifiers are not emojis on their own): 1906 emojis in 9 groups.
"""
from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

from PIL import Image

from bench.quality.common import read_tar_members

# npm spec -> SHA-1 of the tarball (npm's "shasum"); common.npm_pack fails on a changed tarball.
PACKAGES = {
    "emoji-datasource-twitter@16.0.0": "e2bd39a8acb77e158106f8249dd7b4cd93fa1b14",
    "emoji-datasource-facebook@16.0.0": "42802fe5f3174d5b965edd0104f56e3811616bd9",
    "emoji-datasource-apple@16.0.0": "c6e0794c1fd1b88765b880b2137e11d8efa94020",
    "openmoji@17.0.0": "ee8094c5c0de0d2126b77ceb074d62b6fe2071d0",
    "cldr-annotations-full@48.2.0": "eb349fa2333c760da78fd9bc38a1d32a71c5c27e",
    "cldr-annotations-derived-full@48.2.0": "f404ad7766ca8628cd58b78a65d8cd485b53dee3",
}
LICENCES = {  # images: as emoji-datasource's README states them
    "emoji-datasource-twitter@16.0.0": "package MIT (iamcal/emoji-data); images Twemoji (jdecked/twemoji fork "
                                       "v16.0.1), CC-BY 4.0",
    "emoji-datasource-facebook@16.0.0": "package MIT (iamcal/emoji-data); images (c) Facebook, Inc., "
                                        "'no clear licensing'",
    "emoji-datasource-apple@16.0.0": "package MIT (iamcal/emoji-data); images (c) Apple Inc. (macOS 15.5), "
                                     "'not licensed for commercial usage'",
    "openmoji@17.0.0": "graphics CC-BY-SA 4.0, code LGPL-3.0 (hfg-gmuend/openmoji)",
    "cldr-annotations-full@48.2.0": "Unicode-3.0 (unicode-org/cldr-json, CLDR 48)",
    "cldr-annotations-derived-full@48.2.0": "Unicode-3.0 (unicode-org/cldr-json, CLDR 48)",
}
METADATA_PACKAGE = "emoji-datasource-twitter@16.0.0"  # the smallest tarball that carries emoji.json
EXCLUDED_CATEGORIES = {"Component"}


def strip_fe0f(hexcode: str) -> str:
    """Sequence key without variation selector 16, which the sources use inconsistently."""
    return "-".join(p for p in hexcode.upper().split("-") if p != "FE0F")


def emoji_string(hexcode: str) -> str:
    return "".join(chr(int(p, 16)) for p in hexcode.split("-"))


def read_emojis(datasource_tarball: Path) -> list[dict]:
    """The base emojis of emoji.json (Component group excluded), sorted by hexcode."""
    members = read_tar_members(datasource_tarball, lambda n: n == "package/emoji.json")
    table = json.loads(members["package/emoji.json"])
    emojis = []
    for e in table:
        if e["category"] in EXCLUDED_CATEGORIES:
            continue
        hexcode = e["unified"].upper()
        emojis.append({
            "hexcode": hexcode,
            "image": e["image"],  # file name under img/<vendor>/64/
            "has_img": {v: bool(e.get(f"has_img_{v}")) for v in ("twitter", "facebook", "apple")},
            "category": e["category"],
            "subcategory": e["subcategory"],
            "version": float(e["added_in"]),
            "codepoints": len(hexcode.split("-")),
            "first_codepoint": int(hexcode.split("-")[0], 16),
        })
    return sorted(emojis, key=lambda r: r["hexcode"])


def read_annotations(full_tarball: Path, derived_tarball: Path, langs) -> dict[str, dict[str, dict]]:
    """{lang: {emoji string: {"tts": short name, "keywords": [..]}}} from both CLDR packages."""
    langs = list(langs)
    wanted_full = {f"package/annotations/{lang}/annotations.json": lang for lang in langs}
    wanted_derived = {f"package/annotationsDerived/{lang}/annotations.json": lang for lang in langs}
    out: dict[str, dict[str, dict]] = {lang: {} for lang in langs}
    for tarball, wanted, key in ((full_tarball, wanted_full, "annotations"),
                                 (derived_tarball, wanted_derived, "annotationsDerived")):
        members = read_tar_members(tarball, lambda n: n in wanted)
        if len(members) != len(wanted):
            raise SystemExit(f"{tarball.name}: no {key} for " + ", ".join(wanted[n] for n in wanted if n not in members))
        for name, data in sorted(members.items()):
            lang = wanted[name]
            for char, value in json.loads(data)[key]["annotations"].items():
                if value.get("tts"):
                    out[lang].setdefault(char, {"tts": value["tts"][0], "keywords": list(value.get("default", []))})
    return out


def annotation(table: dict[str, dict], hexcode: str) -> dict | None:
    """The annotation of an emoji (fully qualified form first, then without FE0F)."""
    s = emoji_string(hexcode)
    return table.get(s) or table.get(s.replace("\ufe0f", ""))


def clean_text(text: str) -> str:
    """Unicode spaces (French puts U+202F before ':') as one ASCII space."""
    return re.sub(r"\s+", " ", text).strip()


# Words that only say who does something: "man farmer", "woman farmer" and "farmer" are one
# concept, and must not straddle a split (the test would then be a near-copy of training).
_WHO = {"man", "woman", "person", "men", "women", "people", "boy", "girl", "and"}
_GROUPED_PREFIXES = ("family", "kiss", "couple with heart")


def concept_key(name_en: str) -> str:
    """The split group of an emoji, from its English CLDR name: gender/person words and
    "facing right" removed, so gendered and direction variants of one emoji share a group."""
    name = name_en.lower().replace("facing right", " ")
    prefix = name.split(":")[0].strip()
    if ":" in name and prefix in _GROUPED_PREFIXES:
        return prefix
    words = [w for w in re.split(r"[\s:,]+", name) if w and w not in _WHO]
    return " ".join(words) or "(person)"


def vendor_images(tarball: Path, vendor: str) -> dict[str, bytes]:
    """{image file name: 64×64 PNG bytes} of one emoji-datasource vendor package."""
    prefix = f"package/img/{vendor}/64/"
    return {n[len(prefix):]: b for n, b in read_tar_members(tarball, lambda n: n.startswith(prefix)).items()}


def openmoji_svgs(tarball: Path) -> dict[str, bytes]:
    """{FE0F-less HEXCODE: SVG bytes} of OpenMoji's colour set."""
    prefix = "package/color/svg/"
    members = read_tar_members(tarball, lambda n: n.startswith(prefix) and n.endswith(".svg"))
    return {strip_fe0f(n[len(prefix):-4]): b for n, b in members.items()}


def rsvg_convert() -> str:
    path = shutil.which("rsvg-convert")
    if not path:
        raise SystemExit("rsvg-convert not found: apt-get install librsvg2-bin (it rasterises OpenMoji's SVGs)")
    return path


def rsvg_version() -> str:
    return subprocess.run([rsvg_convert(), "--version"], check=True, capture_output=True,
                          text=True).stdout.strip()


def rasterise_svg(svg: bytes, size: int = 64) -> bytes:
    """SVG → size×size RGBA PNG bytes (rsvg-convert)."""
    return subprocess.run([rsvg_convert(), "-w", str(size), "-h", str(size), "-f", "png"], input=svg,
                          check=True, capture_output=True).stdout


def write_png_on_white(png: bytes, path: Path, size: int) -> None:
    """Flatten onto white (RGB), downsample with Lanczos, save an optimised PNG."""
    rgba = Image.open(io.BytesIO(png)).convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb.save(path, "PNG", optimize=True)
