"""Output types, one plugin per type: `OUTPUT_TYPES.get(out.type)` or `output_type(out)`."""
from mmkeras.outputs import category, multilabel, numeric  # noqa: F401  (each registers its type)
from mmkeras.outputs.base import OUTPUT_TYPES, OutputType, output_type  # noqa: F401
