"""Peak memory and records/s of `python -m mmkeras.predict` on a manifest of a million rows.

    python bench/predict_scale.py [--rows 1000000] [--work-dir runs/predict_scale]

The harness's predict_rss grows the demo's held-out manifest 20× (its files are decoded
Opus and PNG: a million rows would take hours). This script asks the question at full
scale on the demo's two file-free inputs (keywords text, two numbers): it trains that
model for two epochs, writes the demo's test records (labels removed) repeated to 10 000
rows and to `--rows` rows, predicts both in fresh processes to CSV, and prints peak RSS,
wall time and records/s of each, and the ratio of the peaks.
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.context import run_python  # noqa: E402
from bench.memory_bench import first_records  # noqa: E402

SMALL = 10_000


def write_rows(path, records, rows):
    """`records` cycled to `rows` lines, written in blocks (the file, not the list, is large)."""
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, rows, len(records)):
            f.write("".join(json.dumps(r) + "\n" for r in records[:rows - start]))
    return path


def main(args):
    work = os.path.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    demo = os.path.join(ROOT, "data", "demo")
    run = os.path.join(work, "run")
    if not os.path.exists(os.path.join(run, "model.keras")):
        overrides = ["--set", "inputs=[{name: text, type: text, column: text, max_tokens: 16, vocab_size: 2000, "
                              "encoder: {type: bow}}, {name: stats, type: numeric, columns: [version, codepoints]}]",
                     "--set", "training.epochs=2"]
        run_python(["train.py", "--config", os.path.join(ROOT, "configs", "demo.yaml"), "--output", run,
                    "--overwrite", *overrides], os.path.join(work, "train.log"))
    keep = ("id", "text", "version", "codepoints")
    records = [{k: r[k] for k in keep if k in r} for r in first_records(os.path.join(demo, "test.jsonl"))]
    results = {}
    for rows in (SMALL, args.rows):
        manifest = write_rows(os.path.join(work, f"new_{rows}.jsonl"), records, rows)
        out = os.path.join(work, f"preds_{rows}.csv")
        child = run_python(["-m", "mmkeras.predict", run, manifest, "--output", out],
                           os.path.join(work, f"predict_{rows}.log"))
        with open(out) as f:
            predicted = sum(1 for _ in f) - 1
        assert predicted == rows, f"{predicted} of {rows} rows predicted"
        results[rows] = {"peak_rss_mb": child.peak_rss_bytes / 2**20, "wall_s": child.wall_s,
                         "records_per_s": rows / child.wall_s}
        os.remove(manifest)
        os.remove(out)
        print(f"{rows:>9} rows: peak RSS {results[rows]['peak_rss_mb']:.0f} MB, {child.wall_s:.0f} s, "
              f"{results[rows]['records_per_s']:.0f} records/s", flush=True)
    print(f"peak RSS {args.rows} rows ÷ {SMALL} rows: "
          f"{results[args.rows]['peak_rss_mb'] / results[SMALL]['peak_rss_mb']:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--work-dir", default=os.path.join(ROOT, "runs", "predict_scale"))
    main(parser.parse_args())
