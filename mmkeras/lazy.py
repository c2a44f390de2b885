"""TensorFlow modules imported on first use.

A plugin file (`mmkeras.modalities.<type>`) holds its config schema next to its
TensorFlow code, and the config is read — and a typo in it reported — before
TensorFlow loads (about 5 s). Such a file names TensorFlow through these handles: the
module is imported at the first attribute taken from it, inside a method, never when
the config reads the schema.

A Keras layer that must live in such a file (a fusion beside its parameters) is written
as a plain class against these handles; `layer_class` makes the tf_keras Layer class from
it when TensorFlow is wanted.

Example:
    from mmkeras.lazy import tf

    def decode(path):
        return tf.io.read_file(path)  # TensorFlow is imported here, on the first call
"""
import functools
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


@functools.cache
def layer_class(plain):
    """The tf_keras Layer class of `plain`, a class written without a base (methods call
    `super()` as a Layer's would): `class <name>(plain, keras.layers.Layer)`, made once and
    registered for `load_model` as "mmkeras><name>", the name a Layer subclass written
    directly would have had, so saved models load either way.

    Example:
        class Double:
            def call(self, x):
                return 2 * x

        layer = layer_class(Double)()  # a keras.layers.Layer
    """
    cls = type(plain.__name__, (plain, keras.layers.Layer),
               {"__module__": plain.__module__, "__qualname__": plain.__qualname__, "__doc__": plain.__doc__})
    return keras.saving.register_keras_serializable(package="mmkeras")(cls)
