"""`python -m mmkeras.predict`: records/s per artifact against the Keras model in-process, and
peak memory as the manifest grows.

predict_throughput: every artifact runs the whole predict path in this process (read and
validate the manifest, decode, run, format rows into a null sink), interleaved with the
baseline: the same trained Keras model predicting the same records already decoded in
memory (`model.predict` on tensors, the run's batch size) — what a user who writes their
own loop gets at best. The held-out manifest of the exported run, its labels removed.

predict_rss: peak RSS of the command in a fresh process on the 10× manifest ÷ the 1×
(records repeated; files hard-linked beside it, as rss_growth_10x does).
"""
import argparse
import os
import tempfile

from bench.context import run_python
from bench.memory_bench import file_columns, first_records, link_files, write_repeated
from bench.registry import BENCHMARKS
from bench.timing import interleave, ratio, timed

ARTIFACTS = ("keras", "saved_model", "tflite:float32", "tflite:int8")


def unlabelled(records, cfg):
    """The records without their label columns: what predict is given in production."""
    labels = {o.source for o in cfg.outputs}
    return [{k: v for k, v in r.items() if k not in labels} for r in records]


def unlabelled_copy(ctx, folder, factor):
    """The exported run's held-out manifest, labels removed, repeated `factor` times, in `folder`
    (its files hard-linked there: manifest paths may not leave the manifest's folder) → (path, records)."""
    cfg = ctx.export_context.cfg
    manifest = cfg.data.test or cfg.data.validation
    records = unlabelled(first_records(manifest), cfg)
    link_files(records, file_columns(cfg), os.path.dirname(os.path.abspath(manifest)), folder)
    return write_repeated(os.path.join(folder, f"new_{factor}x.jsonl"), records, factor), len(records) * factor


def predict_all(predictor, manifest):
    """The command's whole path on `manifest`, rows written to a null sink → records predicted."""
    from mmkeras.data.records import BadRecordLog
    from mmkeras.predict import predict_to

    args = argparse.Namespace(data=manifest, output=None, top_k=3, chunk_size=2048)
    with open(os.devnull, "w") as sink:
        return predict_to(sink, predictor, args, BadRecordLog("skip"))[0]


@BENCHMARKS.register("predict_throughput")
def predict_throughput(ctx):
    """records/s of mmkeras.predict per artifact ÷ the in-process Keras model on pre-decoded records."""
    import numpy as np
    import tensorflow as tf

    from mmkeras.prediction import Predictor

    ctx.exported()
    export_ctx = ctx.export_context
    with tempfile.TemporaryDirectory(dir=ctx.work_dir, prefix="predict-") as tmp:
        path, n = unlabelled_copy(ctx, tmp, 1)
        predictors = {spec: Predictor.open(ctx.run_dir, spec) for spec in ARTIFACTS}
        # Baseline: the trained model on every record decoded once, in memory, at the run's batch size.
        split = "test" if export_ctx.cfg.data.test else "validation"
        inputs = [x for x, _ in export_ctx.samples(split)]
        batch = {k: tf.constant(np.concatenate([x[k] for x in inputs])) for k in inputs[0]}
        model, batch_size = export_ctx.inference_model, export_ctx.cfg.training.batch_size
        tasks = {"keras_in_process": timed(lambda: model.predict(batch, batch_size=batch_size, verbose=0))}
        tasks.update({spec: timed(lambda p=p: predict_all(p, path)) for spec, p in predictors.items()})
        timings = interleave(tasks, ctx.settings.repeats)
    counts = {name: len(inputs) if name == "keras_in_process" else n for name in timings}
    per_s = {name: counts[name] / t.median for name, t in timings.items()}
    figures = {f"predict_{spec.replace(':', '_')}_vs_keras": ratio(per_s[spec], per_s["keras_in_process"])
               for spec in ARTIFACTS}
    return figures, {"records": n, "records_per_s": per_s, "timings": {k: t.to_json() for k, t in timings.items()}}


@BENCHMARKS.register("predict_rss")
def predict_rss(ctx, factor=20):
    """Peak RSS of `python -m mmkeras.predict` (keras artifact) on a `factor`× manifest ÷ the 1×."""
    ctx.exported()
    peaks, walls, counts = {}, {}, {}
    with tempfile.TemporaryDirectory(dir=ctx.work_dir, prefix="predict-rss-") as tmp:
        for f in (1, factor):
            path, counts[f"{f}x"] = unlabelled_copy(ctx, tmp, f)
            out = os.path.join(tmp, f"p{f}.csv")
            child = run_python(["-m", "mmkeras.predict", ctx.run_dir, path, "--output", out],
                               os.path.join(ctx.logs, f"predict-{f}x.log"))
            peaks[f"{f}x"], walls[f"{f}x"] = child.peak_rss_bytes, child.wall_s
            with open(out) as rows:
                assert sum(1 for _ in rows) == counts[f"{f}x"] + 1, "every record predicted"
    return ({f"predict_rss_growth_{factor}x": ratio(peaks[f"{factor}x"], peaks["1x"])},
            {"records": counts, "peak_rss_bytes": peaks, "wall_s": walls,
             "records_per_s": {k: counts[k] / w for k, w in walls.items()}})
