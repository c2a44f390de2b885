"""Export a trained run for serving and devices, each artifact verified against the Keras model.

    python -m mmkeras.export RUN_DIR [--formats saved_model,tflite]
                                     [--quantize float32,dynamic,float16,int8] [--samples N]
    python -m export RUN_DIR ...      (the same, from the repository root)

Writes RUN_DIR/export/saved_model/<name>/<version>/ (TF Serving, raw inputs, warmup
records), RUN_DIR/export/tflite/<name>_<quant>.tflite (TFLite metadata inside) + .json (the
same facts for people) + .task (the variant, its front-ends and .json in one bundle),
and RUN_DIR/export/report.{json,md,png}. Defaults come from the run's `export:` config.
Nothing is retrained.
"""
import argparse
import os
import sys
import tempfile

from mmkeras.cli import run_cli, start_tensorflow, step

# The format and variant names the config accepts in `export:`.
from mmkeras.config.export import FORMATS, QUANTIZATIONS as VARIANT_NAMES, calibrates

WARMUP_RECORDS = 10  # TF Serving replays these at load; a few real requests warm every op


def _split_list(text):
    return [item.strip() for item in text.split(",") if item.strip()] if text else None


def main(args):
    start_tensorflow(args.debug)
    from mmkeras.errors import ConfigError, did_you_mean

    from mmkeras.export.context import ExportContext
    from mmkeras.export.report import write_report
    from mmkeras.export.saved_model import save_serving_model
    from mmkeras.export.tflite import QUANTIZATIONS
    from mmkeras.export.verify import verify_variant
    from mmkeras.runtime import SavedModelRunner, raw_example

    if args.samples is not None and args.samples < 1:
        raise ConfigError(f"--samples: int8 calibrates on at least 1 training record, got {args.samples}")
    step(f"loading {args.run_dir}")
    ctx = ExportContext(args.run_dir)
    formats = _split_list(args.formats) or ctx.cfg.export.formats
    quantize = _split_list(args.quantize) or ctx.cfg.export.quantize
    for fmt in formats:
        if fmt not in FORMATS:
            raise ConfigError(f"--formats: unknown format '{fmt}'{did_you_mean(fmt, FORMATS)}; "
                              f"choose from {', '.join(FORMATS)}")
    for name in quantize:
        QUANTIZATIONS.get(name)  # fails early, with a did-you-mean
    n_calibration = args.samples if args.samples is not None else ctx.cfg.export.representative_samples
    export_dir = ctx.run.export

    # Every variant is scored on the same held-out split, against the same Keras outputs.
    eval_split = "test" if ctx.cfg.data.test else "validation"
    samples = ctx.samples(eval_split)
    keras_outputs = [ctx.keras_predict(x) for x, _ in samples]
    step(f"verifying on {len(samples)} {eval_split} records")
    results, frontends = {}, {}

    if "saved_model" in formats:
        validation = ctx.split("validation")
        warmup = [raw_example(ctx.prep.handlers, validation, i) for i in range(min(WARMUP_RECORDS, len(validation)))]
        path = save_serving_model(ctx, export_dir, warmup)
        step(f"saved_model: wrote {path}")
        test = ctx.split(eval_split)
        raw_samples = [(raw_example(ctx.prep.handlers, test, i), targets) for i, (_, targets) in enumerate(samples)]
        results["saved_model"] = verify_variant(SavedModelRunner(path, ctx.cfg.outputs), raw_samples, keras_outputs, ctx,
                                                "saved_model")
        results["saved_model"]["path"] = os.path.relpath(path, export_dir)
        _print_result(results["saved_model"])

    if "tflite" in formats:
        frontends = export_tflite(ctx, export_dir, quantize, n_calibration, samples, keras_outputs, results)

    meta = {"model": ctx.cfg.name, "run_dir": ctx.run.path, "split": eval_split, "samples": len(samples),
            "calibration_samples": n_calibration if calibrates(quantize) else 0, "threads": 1}
    for path in write_report(export_dir, results, meta, frontends):
        step(f"wrote {path}")


def export_tflite(ctx, export_dir, quantize, n_calibration, samples, keras_outputs, results):
    """Convert, save and verify each input's float front-end, then every TFLite variant (into `results`).

    Returns the front-ends' verification results (input name → size, latency, parity, ops).
    """
    from mmkeras.export.saved_model import save_tensor_model
    from mmkeras.export.profile import op_profile
    from mmkeras.export.report import describe_kept
    from mmkeras.export.tflite import (convert, convert_variant, float_layers_of, inspect_tflite,
                                       quantization_config, representative_dataset, save_bundle, save_frontend,
                                       save_tflite, signature_input_names)
    from mmkeras.export.verify import verify_frontend, verify_variant
    from mmkeras.runtime import LiteRTRunner, TFLitePipeline

    float32 = quantization_config("float32")
    frontends, frontend_results = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, keras_frontend in ctx.frontend_models.items():
            step(f"tflite {name} front-end (float32): converting")
            model_bytes = convert(save_tensor_model(keras_frontend, os.path.join(tmp, f"{name}_frontend")), float32)
            details = inspect_tflite(model_bytes, float32, f"{name} front-end")  # refuses Flex ops before saving
            path, model_bytes = save_frontend(ctx, export_dir, name, model_bytes)
            frontends[name] = LiteRTRunner(model_bytes)
            frontend_results[name] = {**verify_frontend(frontends[name], keras_frontend, samples, name), **details,
                                      "path": os.path.relpath(path, export_dir)}
            step(f"  {name} front-end: {len(model_bytes) / 1024:.1f} KB, "
                 f"{frontend_results[name]['latency_ms']:.2f} ms, max |diff| {frontend_results[name]['max_abs_diff']:.1e}")
        tensor_model = save_tensor_model(ctx.tflite_model, os.path.join(tmp, "tensor_model"))
        calibration = None
        if calibrates(quantize):
            train = [(ctx.tflite_inputs(x), y) for x, y in ctx.samples("train", n_calibration)]
            calibration = representative_dataset(train, signature_input_names(tensor_model))
        # Variant → its bytes as converted (no metadata yet): int8_mixed times these rather than
        # convert again, and their op profiles (cached by content) serve the report and that choice.
        converted = {}
        for name in quantize:
            step(f"tflite {name}: converting")
            config = quantization_config(name, calibration, float_layers_of(ctx.tflite_model))
            model_bytes, decisions = convert_variant(tensor_model, config, converted)
            converted[name] = model_bytes
            details = {**inspect_tflite(model_bytes, config), **decisions}  # refuses Flex and custom ops before saving
            for kept in decisions.get("kept_float", []):
                step(f"  {name}: {describe_kept(kept)}")
            path, model_bytes = save_tflite(ctx, export_dir, name, model_bytes)  # now with its metadata
            bundle = save_bundle(ctx, export_dir, name)
            lite = LiteRTRunner(model_bytes)
            if lite.xnnpack_refused:
                step(f"  {name}: LiteRT's XNNPACK delegate refused it ({lite.xnnpack_refused}); "
                     "timed and verified on the built-in kernels")
            runner = TFLitePipeline(lite, frontends)
            results[name] = {**verify_variant(runner, samples, keras_outputs, ctx, name), **details,
                             "xnnpack": lite.xnnpack_refused is None, "path": os.path.relpath(path, export_dir),
                             "bundle": os.path.relpath(bundle, export_dir),
                             "bundle_size_bytes": os.path.getsize(bundle), "op_profile": op_profile(converted[name])}
            _print_result(results[name])
    return frontend_results


def _print_result(result):
    scores = ", ".join(f"{name} {o['metric']} {o['value']:.4f} (keras {o['keras_value']:.4f})"
                       for name, o in result["outputs"].items())
    step(f"  {result['variant']}: {result['size_bytes'] / 1024:.1f} KB, {result['latency_ms']:.2f} ms, "
         f"max |diff| {result['max_abs_diff']:.1e}, {scores}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mmkeras.export", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a run directory written by train.py")
    parser.add_argument("--formats", help=f"comma-separated: {','.join(FORMATS)} (default: the run's export.formats)")
    parser.add_argument("--quantize", help=f"comma-separated TFLite variants: {','.join(VARIANT_NAMES)} "
                                           "(default: the run's export.quantize)")
    parser.add_argument("--samples", type=int, help="int8 calibration samples from the training split "
                                                    "(default: export.representative_samples)")
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks for user errors and TensorFlow's start-up log")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run_cli(main, parse_args()))
