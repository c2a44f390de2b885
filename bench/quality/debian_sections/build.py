"""Build the `debian_sections` quality set: predict a Debian binary package's Section (12
classes) from its one-line synopsis and five numbers of very different scales; the test split
holds out whole source packages.

Command (from the repository root)::

    .venv/bin/python bench/quality/debian_sections/build.py [--out DIR] [--small]

Default DIR: `common.set_dir("debian_sections")` (~/.cache/mmkeras/quality/debian_sections).
Needs Debian's apt with the bookworm main amd64 lists downloaded (`apt-get update`); reads
them from /var/lib/apt/lists/ (no network). The InRelease Date/Version and the SHA256 of the
Packages list go into built.json; the same lists give the same files.

Output: train/val/test.jsonl with columns text (synopsis), installed_size_kib, size_ratio,
n_depends, n_recommends_suggests, name_length, section (the label) + metadata (package,
source, version), config.yaml, built.json.
"""
from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.quality import common  # noqa: E402
from bench.quality.debian_sections import debian_index  # noqa: E402

NAME = "debian_sections"
SEED = 20240612
CODENAME, COMPONENT, ARCH = "bookworm", "main", "amd64"
# The lists this set was written against (README numbers); other lists still build, with a warning.
PINNED_PACKAGES_SHA256 = "515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f"
# The twelve most frequent general-purpose sections of bookworm main. Left out, although
# more frequent than science/admin/x11/misc: the language-ecosystem sections whose binaries are
# generated from one template (haskell, rust, golang, javascript, java, ruby, gnu-r: "Rust crate
# ..."), which a keyword in the synopsis gives away; python and perl stay as the two of them.
SECTIONS = ["libs", "libdevel", "python", "doc", "perl", "devel", "utils", "net", "science", "admin",
            "x11", "misc"]
PER_SOURCE = 3          # at most this many binaries of one source (gcc-cross ships hundreds)
MAX_CLASS_SHARE = 0.25  # no section above this share of a split
SIZES = {"train": 4000, "val": 600, "test": 1500}
SMALL_SIZES = {"train": 120, "val": 30, "test": 50}
FRACTIONS = (0.62, 0.10, 0.28)  # of source packages; each split is then subsampled to SIZES
NUMERIC = ["installed_size_kib", "size_ratio", "n_depends", "n_recommends_suggests", "name_length"]


def record(pkg: dict) -> dict | None:
    if pkg.get("Section") not in SECTIONS or "Installed-Size" not in pkg or "Size" not in pkg:
        return None
    installed = int(pkg["Installed-Size"])
    ratio = int(pkg["Size"]) / (max(installed, 1) * 1024)
    return {"package": pkg["Package"], "source": debian_index.source_name(pkg), "version": pkg["Version"],
            "text": pkg["Description"].strip(),
            "installed_size_kib": installed,
            "size_ratio": round(min(max(ratio, 0.0), 1.0), 4),
            "n_depends": debian_index.count_relations(pkg.get("Depends")),
            "n_recommends_suggests": debian_index.count_relations(pkg.get("Recommends"))
            + debian_index.count_relations(pkg.get("Suggests")),
            "name_length": len(pkg["Package"]),
            "section": pkg["Section"]}


def limit_per_source(records: list[dict], per_source: int) -> list[dict]:
    by_source = defaultdict(list)
    for rec in records:
        by_source[rec["source"]].append(rec)
    kept = []
    for source in sorted(by_source):
        recs = sorted(by_source[source], key=lambda r: common.stable_fraction(r["package"], SEED))
        kept += recs[:per_source]
    return kept


def subsample(records: list[dict], n: int, label: str, seed: int) -> list[dict]:
    """n records in seeded order, skipping a class once it holds MAX_CLASS_SHARE of n."""
    cap = int(MAX_CLASS_SHARE * n)
    counts, chosen = Counter(), []
    for rec in sorted(records, key=lambda r: common.stable_fraction(r["package"], seed)):
        if counts[rec[label]] < cap:
            chosen.append(rec)
            counts[rec[label]] += 1
            if len(chosen) == n:
                break
    if len(chosen) < n:
        raise SystemExit(f"only {len(chosen)} records for a split of {n}: the lists hold too few packages")
    return sorted(chosen, key=lambda r: r["package"])


def build(out: Path, small: bool = False) -> None:
    start = time.time()
    rel = debian_index.release(CODENAME, COMPONENT, ARCH)
    pkgs = debian_index.packages(rel)
    lists = rel.info()
    if lists["packages_sha256"] != PINNED_PACKAGES_SHA256:
        print(f"warning: {rel.packages_file} is not the list this set was written against "
              f"(InRelease Date {lists['inrelease_date']}); the set will differ from the README's counts",
              file=sys.stderr)
    records = [r for p in pkgs if (r := record(p))]
    pool = limit_per_source(records, PER_SOURCE)
    by_split = common.group_split(pool, lambda r: r["source"], FRACTIONS, seed=SEED)
    sizes = SMALL_SIZES if small else SIZES
    splits = {s: subsample(by_split[s], sizes[s], "section", SEED + i) for i, s in enumerate(common.SPLITS)}
    sources = {s: {r["source"] for r in splits[s]} for s in splits}
    assert not (sources["train"] & sources["test"]) and not (sources["val"] & sources["test"])
    assert not (sources["train"] & sources["val"])

    common.clean_output(out)
    config = {
        "name": NAME,
        "inputs": [
            {"name": "synopsis", "type": "text", "column": "text", "max_tokens": 24, "vocab_size": 4000},
            {"name": "stats", "type": "numeric", "columns": NUMERIC},
        ],
        "outputs": [{"name": "section", "type": "category", "column": "section"}],
    }
    info = {
        "source": {"debian_lists": lists, "matches_pinned_lists": lists["packages_sha256"] == PINNED_PACKAGES_SHA256,
                   "licence": "Debian archive metadata (package descriptions written by the packages' "
                              "maintainers and upstreams, distributed with the packages under their free licences)"},
        "seed": SEED, "sections": SECTIONS, "per_source": PER_SOURCE, "max_class_share": MAX_CLASS_SHARE,
        "pool": {"binaries_in_sections": len(records), "after_per_source_limit": len(pool),
                 "sources": len({r["source"] for r in pool})},
        "per_class": {s: dict(sorted(Counter(r["section"] for r in splits[s]).items())) for s in common.SPLITS},
        "sources_per_split": {s: len(v) for s, v in sources.items()},
        "split": "by source package (group_split on Source), fractions " + str(FRACTIONS),
        "small": small,
    }
    common.write_set(out, splits, config, info)
    print(f"{NAME}: built in {time.time() - start:.1f} s")


if __name__ == "__main__":
    common.main(NAME, build, __doc__)
