"""Check every exported variant against the trained Keras model: parity, accuracy, size, latency.

A variant is anything callable as `runner(inputs) -> {output: float array}` with a
`size_bytes`: a TFLite model with its float front-ends (TFLitePipeline), or the TF
Serving SavedModel through its raw-input signature.

Example:
    keras_outputs = ctx.keras_outputs(samples)   # once, shared by all variants
    frontends = {"speech": LiteRTRunner(frontend_bytes)}
    result = verify_variant(TFLitePipeline(LiteRTRunner(tflite_bytes), frontends), samples, keras_outputs,
                            ctx, "float32")
"""
import statistics
import time

import numpy as np

from mmkeras.config.export import VARIANTS
from mmkeras.errors import UserError
from mmkeras.names import features_key
from mmkeras.outputs import output_type
from mmkeras.runtime import TFLitePipeline

# Largest |variant - Keras| output difference allowed. Only the exact variants are gated (the
# SavedModel, float32 and float32_pruned, each against its own Keras model): quantised ones
# trade exactness for size, so their differences are reported instead.
PARITY_LIMIT = 1e-4
PARITY_LIMITS = {"saved_model": PARITY_LIMIT, **{name: PARITY_LIMIT for name, v in VARIANTS.items() if v.exact}}
# A front-end's log-mel features: float32 FFTs differ in rounding, amplified near log's floor.
FRONTEND_PARITY_LIMIT = 1e-3
# What float32 rounding may move the input of a front-end's float-only layers by (measured: the
# numeric standardisation within 1e-6 of Keras); such a layer multiplies it by its `max_slope`.
FRONTEND_ROUNDING = 1e-5


def frontend_limit(chain):
    """The parity limit of a front-end that runs `chain` (its layers in order): FRONTEND_PARITY_LIMIT,
    or the rounding its float-only layers amplify where that is more (a quantile bin 3e-4 wide
    turns a 1e-7 difference in the standardised value into 3e-4 of its output)."""
    slope = float(np.prod([getattr(layer, "max_slope", 1.0) for layer in chain[1:]]))
    return max(FRONTEND_PARITY_LIMIT, FRONTEND_ROUNDING * slope)


class ParityError(UserError):
    """An exported variant's outputs differ from the Keras model's beyond its limit."""


def primary_metric(out, y_true, y_pred, labels):
    """The output's primary metric (accuracy, micro-F1 or MAE) over stacked samples."""
    kind = output_type(out)
    return kind.metrics(y_true, y_pred, labels)[kind.primary_metric]


def run_timed(runner, samples):
    """Outputs per sample and the median batch-1 latency in ms (after one untimed warm-up run)."""
    runner(samples[0][0])  # first run allocates and packs weights: not what a user waits for
    outputs, times = [], []
    for inputs, _ in samples:
        start = time.perf_counter()
        outputs.append(runner(inputs))
        times.append(time.perf_counter() - start)
    return outputs, 1000 * statistics.median(times)


def _stack(dicts, name):
    return np.concatenate([np.asarray(d[name]) for d in dicts])


def compare_output(out, lite, keras, targets, labels):
    """One output's scores for TFLite and Keras predictions, their top-1 agreement and max difference."""
    result = {"metric": output_type(out).primary_metric,
              "higher_is_better": output_type(out).higher_is_better,
              "value": primary_metric(out, targets, lite, labels),
              "keras_value": primary_metric(out, targets, keras, labels),
              "max_abs_diff": float(np.max(np.abs(lite - keras)))}
    agreement = output_type(out).agreement(lite, keras)
    if agreement is not None:
        result["agreement"] = agreement
    return result


def verify_variant(runner, samples, keras_outputs, ctx, variant):
    """Score one exported variant on `samples` against the Keras model; gate its parity.

    Args:
        runner: a TFLitePipeline (a variant with its front-ends), a LiteRTRunner or a SavedModelRunner.
        samples: list of (inputs, targets), batch 1, in the runner's input format
            (`ExportContext.samples` for TFLite; raw examples for the SavedModel).
        keras_outputs: the Keras model's output dict for each sample (computed once, shared).
        ctx: the run's ExportContext (outputs and labels).
        variant: quantisation name; variants in PARITY_LIMITS raise ParityError beyond their limit.

    Returns:
        {"variant", "size_bytes", "latency_ms", "samples", "max_abs_diff",
         "outputs": {output: {"metric", "value", "keras_value", "max_abs_diff", "agreement" (category)}}}
    """
    lite_outputs, latency_ms = run_timed(runner, samples)
    targets = [t for _, t in samples]
    outputs = {
        out.name: compare_output(out, _stack(lite_outputs, out.name), _stack(keras_outputs, out.name),
                                 _stack(targets, out.name), ctx.prep.labels.get(out.name))
        for out in ctx.cfg.outputs
    }
    result = {"variant": variant, "size_bytes": runner.size_bytes, "latency_ms": latency_ms,
              "samples": len(samples), "max_abs_diff": max(o["max_abs_diff"] for o in outputs.values()),
              "outputs": outputs}
    if isinstance(runner, TFLitePipeline):
        # The variant's own file, fed precomputed (and, for int8, prequantised) inputs: what
        # quantisation can speed up.
        feeds = [(runner.file_feed(x), None) for x, _ in samples]
        result["model_latency_ms"] = run_timed(runner.model.invoke, feeds)[1]
    check_parity(result)
    return result


def verify_frontend(runner, keras_frontend, samples, name, limit=FRONTEND_PARITY_LIMIT):
    """One input's front-end TFLite model against its Keras layers: size, latency, max |difference|.

    Args:
        runner: LiteRTRunner of the front-end model.
        keras_frontend: `ctx.frontend_models[name]`.
        samples: list of (inputs, targets) in the Keras model's input format.
        name: the input (e.g. "speech").
        limit: the largest max |difference| accepted (`frontend_limit` of its layers).

    Raises:
        ParityError beyond `limit`.
    """
    inputs = [({name: x[name]}, None) for x, _ in samples]
    lite, latency_ms = run_timed(runner, inputs)
    key = features_key(name)
    diff = max(float(np.max(np.abs(out[key] - np.asarray(keras_frontend(x)[key]))))
               for out, (x, _) in zip(lite, inputs))
    if not diff <= limit:
        raise ParityError(f"{name} front-end export differs from the Keras model by {diff:.1e} (limit {limit:.0e})")
    return {"input": name, "output": key, "size_bytes": runner.size_bytes, "latency_ms": latency_ms,
            "max_abs_diff": diff}


def check_parity(result):
    """Raise ParityError when a gated variant's max |difference| from Keras exceeds its limit."""
    limit = PARITY_LIMITS.get(result["variant"])
    if limit is not None and not result["max_abs_diff"] <= limit:  # `not <=` also catches NaN
        raise ParityError(f"{result['variant']} export differs from the Keras model by "
                          f"{result['max_abs_diff']:.1e} (limit {limit:.0e})")
