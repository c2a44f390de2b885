"""int8 against float32 on trained runs: export each, re-time the variant files interleaved, print a table.

    python bench/compression.py runs/demo runs/quality/work/v3/*/all/mmkeras/run
    python bench/compression.py --no-export RUN_DIR ...     # reuse each run's export/report.json

For every run: `python -m export RUN --formats tflite --quantize float32,int8,int8_mixed` (what a
user runs), then the three variant files re-timed interleaved — round robin over the test
records' front-end features, one LiteRT thread, medians — because the export verifies the
variants one after another, which a busy machine skews. Sizes, accuracy and the ops kept float
come from the export's report.json. Writes OUT/compression.jsonl and prints the Markdown table.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

VARIANTS = ("float32", "int8", "int8_mixed")


def export(run_dir):
    command = [sys.executable, "-m", "export", str(run_dir), "--formats", "tflite", "--quantize", ",".join(VARIANTS)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    if result.returncode != 0:
        raise RuntimeError(f"export of {run_dir} failed: {result.stderr.strip().splitlines()[-1:]}")


def measure(run_dir, samples, repeats):
    """{"variants": {v: {"ms", "size_bytes", "accuracy"...}}, "kept_float": [...]} of one exported run."""
    from bench.export_bench import file_task, frontend_runners, variant_path
    from bench.timing import interleave
    from mmkeras.export.context import ExportContext
    from mmkeras.run_dir import RunDir
    from mmkeras.runtime import LiteRTRunner, TFLitePipeline

    run_dir = str(run_dir)
    report = json.loads(Path(RunDir(run_dir).export, "report.json").read_text(encoding="utf-8"))
    ctx = ExportContext(run_dir)
    split = "test" if ctx.cfg.data.test else "validation"
    inputs = [x for x, _ in ctx.samples(split, samples)]
    frontends = frontend_runners(run_dir, report)
    tasks = {}
    for variant in VARIANTS:
        file = LiteRTRunner(variant_path(run_dir, report, variant), num_threads=1)
        tasks[variant] = file_task(TFLitePipeline(file, frontends), inputs)
    timings = interleave(tasks, repeats)
    variants = {}
    for variant in VARIANTS:
        v = report["variants"][variant]
        first = next(iter(v["outputs"].values()))
        variants[variant] = {"ms": 1000 * timings[variant].median, "size_bytes": v["size_bytes"],
                             "metric": first["metric"], "value": first["value"],
                             "agreement": first.get("agreement")}
    return {"run": str(run_dir), "model": report["meta"]["model"], "variants": variants,
            "kept_float": [k["op"] for k in report["variants"]["int8_mixed"].get("kept_float", [])]}


def table(rows):
    lines = ["| model | float32 ms | int8 ms (× float32) | int8_mixed ms (× float32) | size × float32 (int8 / mixed) "
             "| metric: float32 / int8 / mixed | ops kept float in int8_mixed |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        v = row["variants"]
        f32 = v["float32"]
        cells = [row["model"], f"{f32['ms']:.3f}"]
        cells += [f"{v[n]['ms']:.3f} ({v[n]['ms'] / f32['ms']:.2f})" for n in ("int8", "int8_mixed")]
        cells.append(" / ".join(f"{v[n]['size_bytes'] / f32['size_bytes']:.2f}" for n in ("int8", "int8_mixed")))
        cells.append(f"{f32['metric']} " + " / ".join(f"{v[n]['value']:.3f}" for n in VARIANTS))
        kept = {op: row["kept_float"].count(op) for op in row["kept_float"]}
        cells.append(", ".join(f"{op}×{n}" if n > 1 else op for op, n in kept.items()) or "none")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories written by train.py")
    parser.add_argument("--no-export", dest="export", action="store_false", help="use each run's existing export")
    parser.add_argument("--samples", type=int, default=20, help="test records timed round robin (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=200, help="timed invokes per variant (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/compression", help="default: %(default)s")
    args = parser.parse_args(argv)
    from mmkeras.cli import start_tensorflow

    start_tensorflow(False)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for run_dir in args.runs:
        if args.export:
            export(run_dir)
        rows.append(measure(run_dir, args.samples, args.repeats))
        with open(args.out / "compression.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(rows[-1]) + "\n")
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
