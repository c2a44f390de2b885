"""Evaluate a trained run: metrics, confusion matrices and the per-modality ablation.

    python -m mmkeras.evaluate RUN_DIR [--split test]

Writes RUN_DIR/metrics.json ({split: {output: metrics}, "ablation": {...}}) and
RUN_DIR/confusion_<output>.png, ablation.png, history.png.
"""
import argparse
import sys

from mmkeras.cli import run_cli, start_tensorflow


def main(args):
    start_tensorflow(args.debug)
    from mmkeras.data.preprocessing import load_splits
    from mmkeras.data.records import BadRecordLog
    from mmkeras.errors import UserError
    from mmkeras.evaluation.report import evaluate_run, summary_lines
    from mmkeras.run_dir import load_run

    run, cfg, prep, model = load_run(args.run_dir)
    log = BadRecordLog(cfg.data.on_bad_record)
    splits = load_splits(cfg, log, known_labels=prep.labels)
    if args.split not in splits:
        raise UserError(f"split '{args.split}' is not configured; available: {', '.join(splits)}")
    result = evaluate_run(run, cfg, prep, model, splits[args.split], args.split)
    print("\n".join(summary_lines(result)))
    print(f"wrote {run.metrics}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mmkeras.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a run directory written by train.py")
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"])
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks for user errors and TensorFlow's start-up log")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run_cli(main, parse_args()))
