"""Benchmark mmkeras on this machine: each figure is a ratio of two things timed in the same run.

    python bench/run.py                      # full: ~15 min on 2 idle cores
    python bench/run.py --quick              # every measurement still >= 5 repeats; < 10 min
    python bench/run.py --only pipeline,fit  # some benchmarks (names: see --help)
    python bench/run.py --run-dir runs/demo  # export this trained run instead of training one

Prints a table (key, value, goal, met?, what was compared), writes the JSON (every
figure key, raw timings, machine) and, next to it, the Markdown section for the
README. Exit code 1 if a benchmark failed (the others are still reported).
"""
import argparse
import dataclasses
import os
import sys
import time
import traceback

# `python bench/run.py` puts bench/ on sys.path, not the repository that holds `bench` and `export`.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmkeras.cli import quiet_tensorflow, step  # noqa: E402


def run_benchmarks(ctx, names):
    """Run the named benchmarks → (figure values, raw data by benchmark, tracebacks of failures)."""
    from bench.registry import BENCHMARKS

    values, raw, errors = {}, {}, {}
    for name in names:
        step(f"{name}")
        start = time.perf_counter()
        try:
            figures, data = BENCHMARKS.get(name)(ctx)
        except Exception:  # one failure must not throw away the other benchmarks' minutes of measurements
            errors[name] = traceback.format_exc()
            print(errors[name], file=sys.stderr, flush=True)
            continue
        values.update(figures)
        raw[name] = {**data, "benchmark_wall_s": time.perf_counter() - start}
        step(f"{name}: " + ", ".join(f"{k} {v:.3g}" if v is not None else f"{k} —" for k, v in figures.items()))
    return values, raw, errors


def main(args):
    import bench.export_bench  # noqa: F401  (each module registers its benchmarks)
    import bench.input_bench  # noqa: F401
    import bench.memory_bench  # noqa: F401
    import bench.predict_bench  # noqa: F401
    from bench.context import FULL, QUICK, BenchContext
    from bench.machine import load_average, machine_info
    from bench.registry import BENCHMARKS
    from bench.report import document, markdown_section, text_table
    from mmkeras.io import atomic_write_json, atomic_write_text

    names = args.only.split(",") if args.only else BENCHMARKS.names()
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:  # now, not after minutes of work
        print(f"error: --only: unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS.names())}",
              file=sys.stderr)
        return 2
    settings = QUICK if args.quick else FULL
    ctx = BenchContext(settings, args.config, args.work_dir, args.run_dir)
    load_start = load_average()
    started = time.perf_counter()
    values, raw, errors = run_benchmarks(ctx, names)

    machine = {**machine_info(), "load_average_1m": {"start": load_start, "end": load_average()}}
    settings_json = {**dataclasses.asdict(settings), "config": ctx.config_path, "run_dir": ctx.run_dir,
                     "benchmarks": names, "total_wall_s": time.perf_counter() - started}
    json_path = os.path.abspath(args.json or os.path.join(ctx.work_dir, "results.json"))
    atomic_write_json(json_path, document(values, raw, machine, settings_json, errors))
    md_path = os.path.splitext(json_path)[0] + ".md"
    atomic_write_text(md_path, markdown_section(values, machine, settings_json))

    print("\n" + text_table(values))
    print(f"\nmachine: {machine['cpu_model']}, {machine['cores']} cores, 1-min load average "
          f"{load_start:.1f} → {machine['load_average_1m']['end']:.1f}")
    if load_start > 0.5 * machine["cores"]:
        print("note: the machine was busy when the run started; timings are noisy")
    print(f"wrote {json_path} and {md_path}")
    if errors:
        print(f"failed: {', '.join(errors)} (tracebacks in the JSON's `errors`)", file=sys.stderr)
    return 1 if errors else 0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer records and epochs (still >= 5 repeats)")
    parser.add_argument("--json", help="output JSON (default: WORK_DIR/results.json; Markdown beside it)")
    parser.add_argument("--only", help="comma-separated benchmark names (default: all; a wrong name lists them)")
    parser.add_argument("--run-dir", help="a trained run to export and time (default: train one in WORK_DIR)")
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "demo.yaml"),
                        help="config every benchmark uses (default: configs/demo.yaml)")
    parser.add_argument("--work-dir", default=os.path.join(ROOT, "runs", "bench"),
                        help="runs, logs, temporary manifests (default: runs/bench)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    quiet_tensorflow()
    sys.exit(main(parse_args()))
