"""Build the `debian_tags` quality set: from a Debian binary package's description and six
dependency/name numbers of very different scales, predict jointly its debtags (multilabel, the 20
most frequent tags) and its installed size (numeric, log2 KiB); the test split holds out whole
source packages.

Command (from the repository root)::

    .venv/bin/python bench/quality/debian_tags/build.py [--out DIR] [--small]

Default DIR: `common.set_dir("debian_tags")` (~/.cache/mmkeras/quality/debian_tags).
Needs Debian's apt with the bookworm main amd64 lists downloaded (`apt-get update`; read from
/var/lib/apt/lists/) and, once, network access to the Debian mirror apt uses: the long
descriptions are in the release's main/i18n/Translation-en.xz, which apt-helper downloads by
the SHA256 the local InRelease lists (cached in ~/.cache/mmkeras/quality/_debian/). The
InRelease Date/Version and both lists' SHA256 go into built.json; the same lists give the same
files.

Output: train/val/test.jsonl with columns text (synopsis + start of the description body),
n_depends, n_recommends, n_suggests, name_length, n_reverse_depends, description_chars, tags
(JSON list, the multilabel output), size (log2 of Installed-Size in KiB, the numeric output) +
metadata (package, source, version, installed_size_kib), config.yaml, built.json.
"""
from __future__ import annotations

import math
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.quality import common  # noqa: E402
from bench.quality.debian_sections import debian_index  # noqa: E402

NAME = "debian_tags"
SEED = 20240613
CODENAME, COMPONENT, ARCH = "bookworm", "main", "amd64"
PINNED_PACKAGES_SHA256 = "515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f"
DOWNLOADS = common.CACHE_ROOT / "_debian"   # Translation-en.xz, outside every set's folder
N_TAGS = 20
PER_SOURCE = 3
MAX_WORDS = 100   # of the description kept in `text` (the model reads max_tokens of it)
SIZES = {"train": 4000, "val": 600, "test": 1500}
SMALL_SIZES = {"train": 120, "val": 30, "test": 50}
FRACTIONS = (0.62, 0.10, 0.28)
NUMERIC = ["n_depends", "n_recommends", "n_suggests", "name_length", "n_reverse_depends", "description_chars"]


def top_tags(pkgs: list[dict]) -> list[str]:
    counts = Counter(t for p in pkgs for t in debian_index.tags(p))
    return [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:N_TAGS]]


def record(pkg: dict, wanted: set, descriptions: dict, rdepends: dict) -> dict | None:
    tags = sorted(set(debian_index.tags(pkg)) & wanted)
    full = descriptions.get(pkg.get("Description-md5"))
    if not tags or full is None or "Installed-Size" not in pkg:
        return None
    synopsis, body = debian_index.description_text(full)
    words = (synopsis + "\n" + body).split(" ")
    text = " ".join(words[:MAX_WORDS])
    installed = int(pkg["Installed-Size"])
    return {"package": pkg["Package"], "source": debian_index.source_name(pkg), "version": pkg["Version"],
            "text": text,
            "n_depends": debian_index.count_relations(pkg.get("Depends")),
            "n_recommends": debian_index.count_relations(pkg.get("Recommends")),
            "n_suggests": debian_index.count_relations(pkg.get("Suggests")),
            "name_length": len(pkg["Package"]),
            "n_reverse_depends": rdepends.get(pkg["Package"], 0),
            "description_chars": len(synopsis) + 1 + len(body),
            "tags": tags,
            "size": round(math.log2(max(installed, 1)), 4),
            "installed_size_kib": installed}


def limit_per_source(records: list[dict], per_source: int) -> list[dict]:
    by_source = defaultdict(list)
    for rec in records:
        by_source[rec["source"]].append(rec)
    kept = []
    for source in sorted(by_source):
        kept += sorted(by_source[source], key=lambda r: common.stable_fraction(r["package"], SEED))[:per_source]
    return kept


def subsample(records: list[dict], n: int, seed: int) -> list[dict]:
    if len(records) < n:
        raise SystemExit(f"only {len(records)} records for a split of {n}: the lists hold too few packages")
    chosen = sorted(records, key=lambda r: common.stable_fraction(r["package"], seed))[:n]
    return sorted(chosen, key=lambda r: r["package"])


def build(out: Path, small: bool = False) -> None:
    start = time.time()
    rel = debian_index.release(CODENAME, COMPONENT, ARCH)
    pkgs = debian_index.packages(rel)
    lists = {**rel.info(), **debian_index.translation_info(rel)}
    if lists["packages_sha256"] != PINNED_PACKAGES_SHA256:
        print(f"warning: {rel.packages_file} is not the list this set was written against "
              f"(InRelease Date {lists['inrelease_date']}); the set will differ from the README's counts",
              file=sys.stderr)
    descriptions = debian_index.translations(rel, DOWNLOADS)
    rdepends = debian_index.reverse_depends(pkgs)
    tags = top_tags(pkgs)
    records = [r for p in pkgs if (r := record(p, set(tags), descriptions, rdepends))]
    pool = limit_per_source(records, PER_SOURCE)
    by_split = common.group_split(pool, lambda r: r["source"], FRACTIONS, seed=SEED)
    sizes = SMALL_SIZES if small else SIZES
    splits = {s: subsample(by_split[s], sizes[s], SEED + i) for i, s in enumerate(common.SPLITS)}
    sources = {s: {r["source"] for r in splits[s]} for s in splits}
    assert not (sources["train"] & sources["test"]) and not (sources["val"] & sources["test"])
    assert not (sources["train"] & sources["val"])

    common.clean_output(out)
    config = {
        "name": NAME,
        "inputs": [
            {"name": "description", "type": "text", "column": "text", "max_tokens": 48, "vocab_size": 6000},
            {"name": "relations", "type": "numeric", "columns": NUMERIC},
        ],
        "outputs": [
            {"name": "tags", "type": "multilabel", "column": "tags"},
            {"name": "size", "type": "numeric", "column": "size"},
        ],
    }

    def size_stats(recs):
        xs = sorted(r["size"] for r in recs)
        return {"min": xs[0], "median": xs[len(xs) // 2], "max": xs[-1],
                "mean": round(sum(xs) / len(xs), 3)}

    info = {
        "source": {"debian_lists": lists, "matches_pinned_lists": lists["packages_sha256"] == PINNED_PACKAGES_SHA256,
                   "licence": "Debian archive metadata (package descriptions written by the packages' "
                              "maintainers and upstreams, distributed with the packages under their free "
                              "licences; debtags by the Debian debtags contributors)"},
        "seed": SEED, "tags": tags, "per_source": PER_SOURCE,
        "size_transform": "log2(max(Installed-Size in KiB, 1))",
        "pool": {"binaries_with_a_top_tag": len(records), "after_per_source_limit": len(pool),
                 "sources": len({r["source"] for r in pool})},
        "per_tag": {s: {t: sum(t in r["tags"] for r in splits[s]) for t in tags} for s in common.SPLITS},
        "tags_per_record": {s: round(sum(len(r["tags"]) for r in splits[s]) / len(splits[s]), 3)
                            for s in common.SPLITS},
        "size": {s: size_stats(splits[s]) for s in common.SPLITS},
        "sources_per_split": {s: len(v) for s, v in sources.items()},
        "split": "by source package (group_split on Source), fractions " + str(FRACTIONS),
        "small": small,
    }
    common.write_set(out, splits, config, info)
    print(f"{NAME}: built in {time.time() - start:.1f} s")


if __name__ == "__main__":
    common.main(NAME, build, __doc__)
