"""mmkeras's Keras layers. Importing the package imports every module in it, which registers
each layer class for `keras.models.load_model` (the plugins import theirs only when they
build a model, since the config reads the plugins before TensorFlow loads)."""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
