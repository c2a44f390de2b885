"""Predict with a trained run, or any artifact exported from it, on a manifest of new records.

    python -m mmkeras.predict RUN_DIR DATA.jsonl|DATA.csv [--artifact keras|saved_model|tflite:VARIANT]
                              [--output preds.jsonl|preds.csv] [--top-k K] [--batch-size N]
                              [--on-bad-record skip|error]

Writes one row per valid record: its manifest line and, per output, the label with the
top-k probabilities (multilabel: the labels over 0.5; numeric: the value) — JSONL to
stdout, or to --output (JSONL or CSV by its extension, written whole or not at all).
Records are validated as in training: a bad one is skipped and listed (in
<output>.bad_records.jsonl, or on stderr) or, with --on-bad-record error, stops the run.
Labels are not needed; when the manifest has an output's label column, the predictions
are also scored and the metrics printed, so an exported artifact can be checked offline.
"""
import argparse
import csv
import json
import os
import sys

from mmkeras.cli import run_cli, start_tensorflow
from mmkeras.errors import DataError, UserError


class JsonlWriter:
    def __init__(self, f, cfg):
        self.f = f

    def write(self, rows):
        self.f.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


class CsvWriter:
    """Flat columns: line, then per output its label and probability (and top-k), labels or value."""

    def __init__(self, f, cfg):
        self.f, self.cfg, self.writer = f, cfg, None

    def write(self, rows):
        from mmkeras.prediction import flat_row

        for row in rows:
            cells = flat_row(self.cfg, row)
            if self.writer is None:
                self.writer = csv.DictWriter(self.f, fieldnames=list(cells))
                self.writer.writeheader()
            self.writer.writerow(cells)


WRITERS = {".jsonl": JsonlWriter, ".json": JsonlWriter, ".csv": CsvWriter}


def output_type(output):
    """--output's extension, which picks its writer (.jsonl for stdout)."""
    return ".jsonl" if output is None else os.path.splitext(output)[1].lower()


def check_output(output, data):
    """--output: a file of a type we write, never the manifest being read."""
    if output is None:
        return
    ext = output_type(output)
    if ext not in WRITERS:
        raise UserError(f"--output {output}: unsupported type '{ext}' (use .jsonl or .csv)")
    if os.path.isdir(output):
        raise UserError(f"--output {output}: is a directory; give a file name ending in .jsonl or .csv")
    if os.path.exists(output) and os.path.samefile(output, data):
        raise UserError(f"--output {output}: is the manifest being read; write the predictions elsewhere")


def require_records(count, data, log):
    if count == 0:
        raise DataError(f"{data}: no valid records ({len(log.entries)} bad)")


def bad_records_path(output):
    """`preds.csv` → `preds.bad_records.jsonl`, beside it."""
    return f"{os.path.splitext(output)[0]}.bad_records.jsonl"


def predict_to(f, predictor, args, log):
    """Stream every chunk's predictions into `f`; → (records predicted, Scores or None)."""
    from mmkeras.console import progress
    from mmkeras.prediction import Scores, prediction_rows, read_chunks

    cfg, labels = predictor.cfg, predictor.prep.labels
    labelled = predictor.labelled_outputs(args.data)
    scores = Scores(labelled, labels) if labelled else None
    writer = WRITERS[output_type(args.output)](f, cfg)
    count = 0
    bar = progress(None, f"predicting ({predictor.artifact.description})")
    for split, records in read_chunks(args.data, predictor.prep.handlers, log, args.chunk_size):
        outputs = predictor.artifact(split)
        writer.write(prediction_rows(cfg, labels, split, outputs, args.top_k))
        if scores:
            scores.add(records, outputs)
        count += len(split)
        bar.update(len(split))
    bar.close()
    return count, scores


def main(args):
    start_tensorflow(args.debug)
    from mmkeras.data.records import BadRecordLog
    from mmkeras.evaluation.report import metrics_line
    from mmkeras.io import atomic_path
    from mmkeras.prediction import Predictor, parse_artifact

    if not os.path.isfile(args.data):
        raise DataError(f"manifest not found: {args.data}")
    parse_artifact(args.artifact)  # a typo answers before the model loads
    check_output(args.output, args.data)
    for flag in ("top_k", "batch_size"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UserError(f"--{flag.replace('_', '-')}: must be at least 1, got {value}")
    predictor = Predictor.open(args.run_dir, args.artifact, args.batch_size)
    # Summary lines go to stderr when the predictions themselves go to stdout.
    report = sys.stderr if args.output is None else sys.stdout
    log = BadRecordLog(args.on_bad_record or predictor.cfg.data.on_bad_record)

    if args.output is None:
        count, scores = predict_to(sys.stdout, predictor, args, log)
    else:
        newline = {"newline": ""} if output_type(args.output) == ".csv" else {}  # csv writes its own
        try:
            with atomic_path(args.output) as tmp, open(tmp, "w", encoding="utf-8", **newline) as f:
                count, scores = predict_to(f, predictor, args, log)
                require_records(count, args.data, log)  # before the rename: no empty predictions file
        except OSError as e:  # a read-only folder, a full disk (the temporary file is gone), an unreadable manifest
            if e.filename and os.path.abspath(str(e.filename)) == os.path.abspath(args.data):
                raise DataError(f"{args.data}: cannot read it: {e.strerror}") from None
            raise UserError(f"--output {args.output}: cannot write it: {e.strerror}") from None
    require_records(count, args.data, log)

    artifact = predictor.artifact.description
    where = f" to {args.output}" if args.output else ""
    print(f"predicted {count} records with {artifact}{where}", file=report)
    if args.output and not log.entries and os.path.exists(bad_records_path(args.output)):
        os.remove(bad_records_path(args.output))  # an earlier run's list would describe other records
    if log.entries:
        if args.output:
            log.write(bad_records_path(args.output))
            print(f"skipped {len(log.entries)} bad records, listed in {bad_records_path(args.output)}", file=report)
        else:
            print(f"skipped {len(log.entries)} bad records:", file=report)
            for entry in log.entries:
                print(f"  {log.describe(entry)}", file=report)
    if scores:
        for name, metrics in scores.metrics().items():
            unscored = scores.unscored[name]
            note = f"; {unscored} records without a valid label not scored" if unscored else ""
            print(f"{metrics_line(name, metrics)} (n={metrics['n']}{note})", file=report)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mmkeras.predict", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a run directory written by train.py")
    parser.add_argument("data", help="a JSONL or CSV manifest of the records to predict (labels not needed)")
    parser.add_argument("--artifact", default="keras",
                        help="keras (model.keras), saved_model (the newest TF Serving version) or tflite:VARIANT "
                             "(e.g. tflite:int8, with its front-ends); default keras")
    parser.add_argument("--output", help="predictions file, .jsonl or .csv (default: JSONL on stdout)")
    parser.add_argument("--top-k", type=int, default=3, help="probabilities listed per category output (default 3)")
    parser.add_argument("--batch-size", type=int, help="records per model call (default: the run's batch size; "
                                                       "TFLite variants run batch 1)")
    parser.add_argument("--on-bad-record", choices=["skip", "error"],
                        help="skip and list bad records, or stop at the first (default: the run's data.on_bad_record)")
    parser.add_argument("--chunk-size", type=int, default=2048, help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks for user errors and TensorFlow's start-up log")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run_cli(main, parse_args()))
