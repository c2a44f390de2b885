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
        calibrated: full integer: activations are calibrated on `export.representative_samples`
            training records, float inputs and outputs become int8, and the int8-only op set is
            tried before allowing float builtins.
    """

    name: str
    summary: str
    optimize: bool = False
    weight_type: Optional[str] = None
    calibrated: bool = False


VARIANTS = {q.name: q for q in (
    Quantization("float32", "float32 weights and activations"),
    Quantization("dynamic", "int8 weights, float activations (no calibration data needed)", optimize=True),
    Quantization("float16", "float16 weights", optimize=True, weight_type="float16"),
    Quantization("int8", "full integer: int8 weights, activations, inputs and outputs (int32 token ids stay int32)",
                 optimize=True, calibrated=True),
)}
QUANTIZATIONS = tuple(VARIANTS)


def calibrates(names):
    """Whether any of these variants calibrates on training records."""
    return any(VARIANTS[name].calibrated for name in names)
