"""The names `export:` may list, shared by the config (checked at load) and the exporters.

`mmkeras.export.tflite.QUANTIZATIONS` registers one converter setting per name in QUANTIZATIONS;
a test checks the two agree. Kept apart from mmkeras/export/ because that imports TensorFlow.
"""

FORMATS = ("saved_model", "tflite")

# TFLite variants: float32 weights; int8 weights with float activations (no calibration);
# float16 weights; full-integer int8 (calibrated on export.representative_samples records).
QUANTIZATIONS = ("float32", "dynamic", "float16", "int8")
