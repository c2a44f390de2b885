"""TensorFlow modules imported on first use.

A plugin file (`mmkeras.modalities.<type>`) holds its config schema next to its
TensorFlow code, and the config is read — and a typo in it reported — before
TensorFlow loads (about 5 s). Such a file names TensorFlow through these handles: the
module is imported at the first attribute taken from it, inside a method, never when
the config reads the schema.

Example:
    from mmkeras.lazy import tf

    def decode(path):
        return tf.io.read_file(path)  # TensorFlow is imported here, on the first call
"""
import importlib


class LazyModule:
    """Stands for the module `name`; every attribute is taken from the module, imported on first use."""

    def __init__(self, name):
        self._module_name = name

    def __getattr__(self, attribute):
        # Called only for attributes the handle itself lacks; after the first import this is a
        # sys.modules lookup.
        return getattr(importlib.import_module(self._module_name), attribute)

    def __repr__(self):
        return f"<lazy module {self._module_name!r}>"


tf = LazyModule("tensorflow")
keras = LazyModule("tf_keras")
tf_text = LazyModule("tensorflow_text")
