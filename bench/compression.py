"""Every compressed variant against float32 on trained runs: export each, re-time the files interleaved, tabulate.

    python bench/compression.py runs/demo runs/quality/work/v3/*/all/mmkeras/run
    python bench/compression.py --no-fine-tune RUN_DIR ...   # post-training variants only (no --qat/--prune)
    python bench/compression.py --no-export RUN_DIR ...      # reuse each run's export/report.json

For every run: `python -m export RUN --formats tflite --quantize float32,int8,int8_mixed --qat 2
--prune 0.5` (what a user runs), then every variant file re-timed interleaved — round robin over
the test records' front-end features, one LiteRT thread, medians — because the export verifies
the variants one after another, which a busy machine skews. Sizes, zipped sizes, accuracy, the
ops kept float and the fine-tunes' facts come from the export's report.json. Writes
OUT/compression.jsonl and prints the Markdown table (one row per run and variant).
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

POST_TRAINING = ("float32", "int8", "int8_mixed")
FINE_TUNED = ("int8_qat", "float32_pruned", "int8_pruned")
QAT_EPOCHS, PRUNE_SPARSITY = "2", "0.5"  # export.qat_epochs and export.prune_sparsity's defaults


def export(run_dir, fine_tune):
    command = [sys.executable, "-m", "export", str(run_dir), "--formats", "tflite", "--quantize", ",".join(POST_TRAINING)]
    if fine_tune:
        command += ["--qat", QAT_EPOCHS, "--prune", PRUNE_SPARSITY]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    if result.returncode != 0:
        raise RuntimeError(f"export of {run_dir} failed: {result.stderr.strip().splitlines()[-1:]}")


def measure(run_dir, samples, repeats):
    """{"variants": {v: {"ms", "size_bytes", "zipped_size_bytes", "value"...}}, ...} of one exported run:
    every variant its report.json lists."""
    from bench.export_bench import file_task, frontend_runners, variant_pipeline
    from bench.timing import interleave
    from mmkeras.export.context import ExportContext
    from mmkeras.run_dir import RunDir

    run_dir = str(run_dir)
    report = json.loads(Path(RunDir(run_dir).export, "report.json").read_text(encoding="utf-8"))
    ctx = ExportContext(run_dir)
    split = "test" if ctx.cfg.data.test else "validation"
    inputs = [x for x, _ in ctx.samples(split, samples)]
    frontends = frontend_runners(run_dir, report)
    names = [v for v in (*POST_TRAINING, *FINE_TUNED) if v in report["variants"]]
    tasks = {v: file_task(variant_pipeline(run_dir, report, v, frontends), inputs) for v in names}
    timings = interleave(tasks, repeats)
    variants = {}
    for variant in names:
        v = report["variants"][variant]
        first = next(iter(v["outputs"].values()))
        variants[variant] = {"ms": 1000 * timings[variant].median, "size_bytes": v["size_bytes"],
                             "zipped_size_bytes": v.get("zipped_size_bytes"),
                             "metric": first["metric"], "value": first["value"], "keras_value": first["keras_value"],
                             "agreement": first.get("agreement"),
                             "kept_float": [k["op"] for k in v.get("kept_float") or []],
                             "fine_tune": v.get("fine_tune"), "sparse_encoding": v.get("sparse_encoding")}
    return {"run": run_dir, "model": report["meta"]["model"], "variants": variants}


def _notes(v):
    notes = []
    if v["kept_float"]:
        kept = {op: v["kept_float"].count(op) for op in v["kept_float"]}
        notes.append("float: " + ", ".join(f"{op}×{n}" if n > 1 else op for op, n in kept.items()))
    tune = v.get("fine_tune")
    if tune:
        notes.append(f"{tune['method']} {tune['epochs']} ep; its Keras {v['keras_value']:.3f}")
        if "sparsity" in tune:
            notes.append(f"{100 * tune['sparsity']:.0f}% zeros, stored {'sparse' if v['sparse_encoding'] else 'dense'}")
    return "; ".join(notes)


def table(rows):
    lines = ["| model | variant | ms | × float32 ms | size × float32 | zipped × float32 | metric | Δ pt vs float32 | notes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        f32 = row["variants"]["float32"]
        for name, v in row["variants"].items():
            zipped = (f"{v['zipped_size_bytes'] / f32['zipped_size_bytes']:.2f}"
                      if v.get("zipped_size_bytes") and f32.get("zipped_size_bytes") else "—")
            cells = [row["model"], name, f"{v['ms']:.3f}", f"{v['ms'] / f32['ms']:.2f}",
                     f"{v['size_bytes'] / f32['size_bytes']:.2f}", zipped, f"{v['metric']} {v['value']:.3f}",
                     f"{100 * (v['value'] - f32['value']):+.1f}", _notes(v)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories written by train.py")
    parser.add_argument("--no-export", dest="export", action="store_false", help="use each run's existing export")
    parser.add_argument("--no-fine-tune", dest="fine_tune", action="store_false",
                        help=f"export without --qat/--prune (only {', '.join(POST_TRAINING)})")
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
            export(run_dir, args.fine_tune)
        rows.append(measure(run_dir, args.samples, args.repeats))
        with open(args.out / "compression.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(rows[-1]) + "\n")
        print("\n".join(table(rows[-1:]).splitlines()[2:]), flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
