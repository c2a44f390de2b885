"""Output types, one plugin file per type (named by it): `OUTPUT_TYPES.get(out.type)` or `output_type(out)`.

Importing the package imports every module in it; the config lists the same file names
without importing them (`mmkeras.registry.plugin_modules`), before TensorFlow loads.
"""
from mmkeras.outputs.base import OUTPUT_TYPES, OutputType, output_type  # noqa: F401
from mmkeras.registry import import_plugins

import_plugins(__name__)
