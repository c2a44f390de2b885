"""Export a trained run for serving and devices, each artifact verified against the Keras model.

    python -m mmkeras.export RUN_DIR [--formats saved_model,tflite]
                                     [--quantize float32,dynamic,float16,int8,int8_mixed] [--samples N]
                                     [--qat EPOCHS] [--prune SPARSITY [--prune-epochs N]]
    python -m export RUN_DIR ...      (the same, from the repository root)

Writes RUN_DIR/export/saved_model/<name>/<version>/ (TF Serving, raw inputs, warmup
records), RUN_DIR/export/tflite/<name>_<quant>.tflite (TFLite metadata inside) + .json (the
same facts for people) + .task (the variant, its front-ends and .json in one bundle),
and RUN_DIR/export/report.{json,md,png}. Defaults come from the run's `export:` config.
The trained model is never changed: `--qat` and `--prune` add variants converted from a
fine-tuned copy of it (`mmkeras.export.fine_tune`), which lives only during the export.
"""
import argparse
import dataclasses
import os
import sys
import tempfile

from mmkeras.cli import run_cli, start_tensorflow, step

# The format and variant names the config accepts in `export:`.
from mmkeras.config.export import FORMATS, QUANTIZATIONS as VARIANT_NAMES, VARIANTS, calibrates

WARMUP_RECORDS = 10  # TF Serving replays these at load; a few real requests warm every op


# The variants `--qat` and `--prune` add to the list.
QAT_VARIANTS = tuple(name for name, v in VARIANTS.items() if v.fine_tune == "qat")
PRUNED_VARIANTS = tuple(name for name, v in VARIANTS.items() if v.fine_tune == "prune")


def _split_list(text):
    return [item.strip() for item in text.split(",") if item.strip()] if text else None


def check_args(args):
    """One line for an impossible number on the command line, before anything loads."""
    from mmkeras.errors import ConfigError

    if args.samples is not None and args.samples < 1:
        raise ConfigError(f"--samples: int8 calibrates on at least 1 training record, got {args.samples}")
    if args.qat is not None and args.qat < 1:
        raise ConfigError(f"--qat: quantisation-aware training needs at least 1 epoch, got {args.qat}")
    if args.prune is not None and not 0 < args.prune < 1:
        raise ConfigError(f"--prune: the share of weights set to zero must be between 0 and 1 (exclusive), "
                          f"got {args.prune:g}")
    if args.prune_epochs is not None and args.prune_epochs < 1:
        raise ConfigError(f"--prune-epochs: the pruning fine-tune needs at least 1 epoch, got {args.prune_epochs}")


def compression_settings(args, cfg):
    """The variant list and the run's `export` settings with `--qat`, `--prune` and `--prune-epochs` applied."""
    quantize = list(_split_list(args.quantize) or cfg.export.quantize)
    settings = {"qat_epochs": args.qat, "prune_sparsity": args.prune, "prune_epochs": args.prune_epochs}
    if args.qat is not None:
        quantize += [name for name in QAT_VARIANTS if name not in quantize]
    if args.prune is not None:
        quantize += [name for name in PRUNED_VARIANTS if name not in quantize]
    return quantize, dataclasses.replace(cfg.export, **{k: v for k, v in settings.items() if v is not None})


def main(args):
    check_args(args)
    start_tensorflow(args.debug)
    from mmkeras.errors import ConfigError, did_you_mean

    from mmkeras.export.context import ExportContext
    from mmkeras.export.report import write_report
    from mmkeras.export.saved_model import save_serving_model
    from mmkeras.export.tflite import QUANTIZATIONS
    from mmkeras.export.verify import verify_variant
    from mmkeras.runtime import SavedModelRunner, raw_example

    step(f"loading {args.run_dir}")
    ctx = ExportContext(args.run_dir)
    formats = _split_list(args.formats) or ctx.cfg.export.formats
    quantize, ctx.cfg.export = compression_settings(args, ctx.cfg)
    for fmt in formats:
        if fmt not in FORMATS:
            raise ConfigError(f"--formats: unknown format '{fmt}'{did_you_mean(fmt, FORMATS)}; "
                              f"choose from {', '.join(FORMATS)}")
    for name in quantize:
        QUANTIZATIONS.get(name)  # fails early, with a did-you-mean
    if any(VARIANTS[name].fine_tune for name in quantize):
        from mmkeras.export.fine_tune import tfmot

        tfmot()  # not installed: one line now, not after the other variants
    n_calibration = args.samples if args.samples is not None else ctx.cfg.export.representative_samples
    export_dir = ctx.run.export

    # Every variant is scored on the same held-out split, against the same Keras outputs.
    eval_split = "test" if ctx.cfg.data.test else "validation"
    samples = ctx.samples(eval_split)
    keras_outputs = ctx.keras_outputs(samples)
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

    The variants of a fine-tune (`int8_qat`, the `_pruned` ones) convert from the run's model
    fine-tuned once for all of them, and are verified against that model's outputs.

    Returns the front-ends' verification results (input name → size, latency, parity, ops).
    """
    from mmkeras.export.saved_model import save_tensor_model
    from mmkeras.export.tflite import convert, inspect_tflite, quantization_config, save_frontend
    from mmkeras.export.verify import frontend_limit, verify_frontend
    from mmkeras.runtime import LiteRTRunner

    float32 = quantization_config("float32")
    frontends, frontend_results = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, keras_frontend in ctx.frontend_models.items():
            step(f"tflite {name} front-end (float32): converting")
            model_bytes = convert(save_tensor_model(keras_frontend, os.path.join(tmp, f"{name}_frontend")), float32)
            details = inspect_tflite(model_bytes, float32, f"{name} front-end")  # refuses Flex ops before saving
            path, model_bytes = save_frontend(ctx, export_dir, name, model_bytes)
            frontends[name] = LiteRTRunner(model_bytes)
            verified = verify_frontend(frontends[name], keras_frontend, samples, name,
                                       frontend_limit(ctx.frontend_chains[name]))
            frontend_results[name] = {**verified, **details, "path": os.path.relpath(path, export_dir)}
            step(f"  {name} front-end: {len(model_bytes) / 1024:.1f} KB, "
                 f"{frontend_results[name]['latency_ms']:.2f} ms, max |diff| {frontend_results[name]['max_abs_diff']:.1e}")
        # Read once for every model: a fine-tuned copy's front-ends are the trained model's (frozen).
        calibration = ([(ctx.tflite_inputs(x), y) for x, y in ctx.samples("train", n_calibration)]
                       if calibrates(quantize) else None)
        for method in dict.fromkeys(VARIANTS[name].fine_tune for name in quantize):
            names = [name for name in quantize if VARIANTS[name].fine_tune == method]
            model_ctx, outputs, facts = ctx, keras_outputs, None
            if method is not None:
                model_ctx, facts = fine_tuned(ctx, method)
                outputs = model_ctx.keras_outputs(samples)
            export_variants(model_ctx, export_dir, names, calibration, samples, outputs, frontends,
                            os.path.join(tmp, method or "trained"), results, facts)
    return frontend_results


def fine_tuned(ctx, method):
    """The run fine-tuned by `method` → (its ExportContext, the facts the report gives)."""
    from mmkeras.export.fine_tune import fine_tune

    epochs = ctx.cfg.export.prune_epochs if method == "prune" else ctx.cfg.export.qat_epochs
    step(f"fine-tuning a copy of the model: {method}, {epochs} epoch(s)")
    model, facts = fine_tune(ctx, method, epochs)
    tuned = ctx.with_model(model)
    scores = ", ".join(f"{k} {v:.3f}" for k, v in facts.items() if k.endswith("sparsity") and k != "target_sparsity")
    step(f"  {method}: kept epoch {facts['kept_epoch']} of {epochs}"
         f" ({facts['monitor']}, epochs {facts['first_epoch']}–{epochs}: {', '.join(f'{v:.4f}' for v in facts['validation'] or [])})" + (f"; {scores}" if scores else ""))
    return tuned, facts


def export_variants(ctx, export_dir, names, calibration_samples, samples, keras_outputs, frontends, tmp, results,
                    fine_tune=None):
    """Convert, save and verify the variants `names` of one Keras model (`ctx.model`) into `results`.

    Args:
        calibration_samples: training records in the TFLite models' input format, for the calibrated
            variants (None when `names` has none).
        keras_outputs: that model's outputs on `samples`, which its variants are verified against.
        frontends: input name → its front-end's LiteRTRunner (shared by every variant).
        tmp: a folder for the model's tensor SavedModel.
        fine_tune: the fine-tune's facts (`mmkeras.export.fine_tune`), written into each variant's result.
    """
    from mmkeras.export.saved_model import save_tensor_model
    from mmkeras.export.profile import op_profile
    from mmkeras.export.report import describe_kept
    from mmkeras.export.tflite import (convert_variant, float_layers_of, inspect_tflite, quantization_config,
                                       representative_dataset, save_bundle, save_tflite, signature_input_names,
                                       size_breakdown, zipped_size)
    from mmkeras.export.verify import verify_variant
    from mmkeras.runtime import LiteRTRunner, TFLitePipeline

    tensor_model = save_tensor_model(ctx.tflite_model, tmp)
    calibration = None
    if calibrates(names):
        calibration = representative_dataset(calibration_samples, signature_input_names(tensor_model))
    # Variant → its bytes as converted (no metadata yet): int8_mixed times these rather than convert again.
    converted = {}
    for name in names:
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
                         "zipped_size_bytes": zipped_size(model_bytes),
                         # The converted graph and weights alone: `size_bytes` also counts the float
                         # front-ends and the metadata's packed files (vocabulary, labels), which
                         # are the same bytes in every variant.
                         "graph_size_bytes": len(converted[name]),
                         "size_breakdown": size_breakdown(converted[name]),
                         "bundle": os.path.relpath(bundle, export_dir),
                         "bundle_size_bytes": os.path.getsize(bundle), "op_profile": op_profile(converted[name])}
        if fine_tune is not None:
            results[name]["fine_tune"] = fine_tune
        _print_result(results[name])


def _print_result(result):
    scores = ", ".join(f"{name} {o['metric']} {o['value']:.4f} (keras {o['keras_value']:.4f})"
                       for name, o in result["outputs"].items())
    zipped = f" ({result['zipped_size_bytes'] / 1024:.1f} KB zipped)" if "zipped_size_bytes" in result else ""
    step(f"  {result['variant']}: {result['size_bytes'] / 1024:.1f} KB{zipped}, {result['latency_ms']:.2f} ms, "
         f"max |diff| {result['max_abs_diff']:.1e}, {scores}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mmkeras.export", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a run directory written by train.py")
    parser.add_argument("--formats", help=f"comma-separated: {','.join(FORMATS)} (default: the run's export.formats)")
    parser.add_argument("--quantize", help=f"comma-separated TFLite variants: {','.join(VARIANT_NAMES)} "
                                           "(default: the run's export.quantize)")
    parser.add_argument("--samples", type=int, help="int8 calibration samples from the training split "
                                                    "(default: export.representative_samples)")
    parser.add_argument("--qat", type=int, metavar="EPOCHS",
                        help="add int8_qat: int8 after EPOCHS of quantisation-aware fine-tuning "
                             "(default: export.qat_epochs when export.quantize lists int8_qat)")
    parser.add_argument("--prune", type=float, metavar="SPARSITY",
                        help="add float32_pruned and int8_pruned: weights pruned by magnitude to this share of zeros "
                             "during a fine-tune (default: export.prune_sparsity)")
    parser.add_argument("--prune-epochs", type=int, metavar="N", help="epochs of the pruning fine-tune "
                                                                      "(default: export.prune_epochs)")
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks for user errors and TensorFlow's start-up log")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run_cli(main, parse_args()))
