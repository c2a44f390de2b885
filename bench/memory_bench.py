"""rss_growth_10x: peak memory of one train.py epoch as the manifest grows tenfold.

The 10× manifest repeats the 1× records (the same files) in a temporary folder.
Files are hard-linked (copied where links fail) into that folder, not symlinked:
`resolve_file` follows links and refuses files outside the manifest's folder.
Each size trains in a fresh train.py process, whose own peak RSS `run_python` reads.
"""
import dataclasses
import json
import os
import shutil
import tempfile

from bench.context import run_python
from bench.registry import BENCHMARKS
from bench.timing import ratio
from mmkeras.data.manifest import read_manifest
from mmkeras.modalities.base import handler
from mmkeras.data.pipeline import cache_mode, decoded_bytes
from mmkeras.data.records import BadRecordLog, load_split
from mmkeras.io import atomic_write_text

FACTORS = (1, 10)
# `none` streams (the goal's configuration); `auto` caches decoded samples while they fit.
CACHE_MODES = ("none", "auto")


def file_columns(cfg):
    """Manifest columns holding file paths (the inputs whose handlers read files)."""
    return [i.columns_used()[0] for i in cfg.inputs if handler(i).reads_files]


def first_records(manifest, n=None):
    """The first `n` (all if None) rows of a manifest that parse as records."""
    records = [r for _, r in read_manifest(manifest) if isinstance(r, dict)]
    return records[:n] if n else records


def link_files(records, columns, source_dir, target_dir):
    """Make every file the records name exist under `target_dir` at the same relative path."""
    for record in records:
        for column in columns:
            if not record.get(column):
                continue
            source, target = (os.path.join(d, record[column]) for d in (source_dir, target_dir))
            if os.path.exists(target):
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                os.link(source, target)
            except OSError:  # another filesystem, or hard links not permitted
                shutil.copy2(source, target)


def write_repeated(path, records, factor):
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records * factor))
    return path


def train_one_epoch(ctx, manifest, cache, name):
    """train.py for one epoch on `manifest` (no test split) in a fresh process → ChildResult."""
    args = ["train.py", "--config", ctx.config_path, "--output", os.path.join(os.path.dirname(manifest), f"run-{name}"),
            "--overwrite", "--set", f"data.train={manifest}", "--set", "data.test=null",
            "--set", f"data.cache={cache}", "--set", "training.epochs=1"]
    print(f"  train.py, 1 epoch, {name} (log: {ctx.logs}/rss-{name}.log)", flush=True)
    return run_python(args, os.path.join(ctx.logs, f"rss-{name}.log"))


@BENCHMARKS.register("rss")
def rss(ctx):
    """Peak RSS of a one-epoch train.py on the 10× manifest ÷ the 1×, streaming and with cache auto."""
    cfg = ctx.cfg
    records = first_records(cfg.data.train, ctx.settings.rss_records)
    with tempfile.TemporaryDirectory(dir=ctx.work_dir, prefix="rss-") as tmp:
        link_files(records, file_columns(cfg), os.path.dirname(cfg.data.train), tmp)
        manifests = {f: write_repeated(os.path.join(tmp, f"train_{f}x.jsonl"), records, f) for f in FACTORS}
        children = {f"{cache}_{f}x": train_one_epoch(ctx, manifests[f], cache, f"{cache}-{f}x")
                    for cache in CACHE_MODES for f in FACTORS}
        handlers, auto = [handler(i) for i in cfg.inputs], dataclasses.replace(cfg.data, cache="auto")
        size_1x = decoded_bytes(handlers, load_split(manifests[1], handlers, [], BadRecordLog("skip")))
    peaks = {name: c.peak_rss_bytes for name, c in children.items()}
    values = {"rss_growth_10x": ratio(peaks["none_10x"], peaks["none_1x"]),
              "rss_growth_10x_cached": ratio(peaks["auto_10x"], peaks["auto_1x"])}
    raw = {"records_1x": len(records), "peak_rss_bytes": peaks,
           # The ratio divides by a baseline (Python, TensorFlow, the model) that does not grow: the
           # absolute growth says how much memory the 9× more records actually took.
           "growth_bytes": {cache: peaks[f"{cache}_10x"] - peaks[f"{cache}_1x"] for cache in CACHE_MODES},
           "wall_s": {name: c.wall_s for name, c in children.items()},
           # Whether `auto` decided to cache at each size (it caches only under data.cache_limit_mb).
           "auto_caches": {f"{f}x": cache_mode(auto, lambda f=f: f * size_1x) == "memory" for f in FACTORS}}
    return values, raw
