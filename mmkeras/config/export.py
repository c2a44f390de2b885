"""The names `export:` may list — the formats and the TFLite variants — and each variant's whole definition.

A TFLite variant is one `Quantization` row below: its name, what it is, whether it
calibrates on training records, and the converter settings that
`mmkeras.export.tflite.QuantizationConfig.of` turns into TFLiteConverter options. Adding a
variant is adding its row: the config check, the exporter, its verification, the report
and the app's `.json` follow. Free of TensorFlow, since the config checks the names when it loads.
"""
import dataclasses
from typing import Optional

FORMATS = ("saved_model", "tflite")


@dataclasses.dataclass(frozen=True)
class Quantization:
    """One TFLite variant.

    Args:
        name: used in the config, file names (`<model>_<name>.tflite`) and reports.
        summary: what the variant is, for people.
        optimize: quantise weights (`tf.lite.Optimize.DEFAULT`).
        weight_type: `target_spec.supported_types` for the weights (e.g. "float16"), or None.
        calibrated: activations are calibrated on `export.representative_samples` training
            records. Alone: full integer — float inputs and outputs become int8, and the int8-only
            op set is tried before allowing float builtins.
        selective: with `calibrated`, each op is int8 only where LiteRT runs it faster in int8
            than in float32 (both timed op by op at export, `mmkeras.export.profile`); the others,
            and the model's float inputs and outputs, stay float32.
        fine_tune: the variant converts a fine-tuned copy of the trained model
            (`mmkeras.export.fine_tune.FINE_TUNES`: "qat", "prune"), not the trained model itself.
        sparse: converted with the weights' zeros stored sparse (`Optimize.EXPERIMENTAL_SPARSITY`)
            and dense, and the smaller file kept.
    """

    name: str
    summary: str
    optimize: bool = False
    weight_type: Optional[str] = None
    calibrated: bool = False
    selective: bool = False
    fine_tune: Optional[str] = None
    sparse: bool = False

    @property
    def exact(self):
        """Computes what its Keras model computes, to float rounding (so export gates its parity)."""
        return not (self.optimize or self.calibrated)


VARIANTS = {q.name: q for q in (
    Quantization("float32", "float32 weights and activations"),
    Quantization("dynamic", "int8 weights, float activations (no calibration data needed)", optimize=True),
    Quantization("float16", "float16 weights", optimize=True, weight_type="float16"),
    Quantization("int8", "full integer: int8 weights, activations, inputs and outputs (int32 token ids stay int32)",
                 optimize=True, calibrated=True),
    # Why a second int8 variant: on LiteRT's CPU kernels (XNNPACK, x86 with VNNI measured) an int8
    # convolution costs about the same per output whatever its depth, so the first convolution
    # of an image or log-mel branch (1-3 input channels) runs 4-8x slower in int8 than in float32
    # and made the whole int8 demo model slower than float32 (README "Export"). `int8` stays full
    # integer, which accelerators need; this one is for CPUs.
    Quantization("int8_mixed", "int8 where it runs faster than float32 op by op (measured at export), float32 elsewhere; "
                               "float inputs and outputs", optimize=True, calibrated=True, selective=True),
    # The compressed variants fine-tune a copy of the model first (`export.qat_epochs`,
    # `export.prune_sparsity`, `export.prune_epochs`), so they are asked for by name or with
    # `--qat` / `--prune`, never by default.
    Quantization("int8_qat", "full integer like int8, from a copy fine-tuned with fake-quant nodes "
                             "(quantisation-aware training)", optimize=True, calibrated=True, fine_tune="qat"),
    Quantization("float32_pruned", "float32 from a copy whose weights were pruned by magnitude during a fine-tune; "
                                   "zeros stored sparse when that makes the file smaller", fine_tune="prune", sparse=True),
    Quantization("int8_pruned", "full integer like int8, from the pruned copy; zeros stored sparse when smaller",
                 optimize=True, calibrated=True, fine_tune="prune", sparse=True),
)}
QUANTIZATIONS = tuple(VARIANTS)
# What `export.quantize` lists when the config does not say: every variant that needs no fine-tuning.
DEFAULT_QUANTIZATIONS = tuple(name for name, q in VARIANTS.items() if q.fine_tune is None)


def calibrates(names):
    """Whether any of these variants calibrates on training records."""
    return any(VARIANTS[name].calibrated for name in names)
