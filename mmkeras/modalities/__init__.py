"""Input types, one plugin file per type: `MODALITIES.get(inp.type)` or `handler(inp)`.

Importing this package imports every module in it, so adding an input type is adding its
file (`base.py` holds the contract). `mmkeras.config` builds the `inputs` schema from the
plugins' config sections.
"""
from mmkeras.modalities.base import MODALITIES, BadValue, InputConfig, Modality, handler  # noqa: F401
from mmkeras.registry import import_plugins

import_plugins(__name__)
