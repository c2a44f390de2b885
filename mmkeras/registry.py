"""Name → builder registries, so a config `type` picks an implementation without if-chains."""
import importlib
import importlib.util
import pkgutil

from mmkeras.errors import ConfigError, did_you_mean
from mmkeras.lazy import layer_class


def plugin_modules(package):
    """The module names in `package` but `base`, listed from its folder without importing it
    (so the config can name the output types before TensorFlow loads)."""
    locations = importlib.util.find_spec(package).submodule_search_locations
    return sorted(m.name for m in pkgutil.iter_modules(locations) if m.name != "base")


def import_plugins(package):
    """Import every plugin module of `package` (each registers itself): a new file is a new type."""
    for name in plugin_modules(package):
        importlib.import_module(f"{package}.{name}")


class Registry:
    """Maps a config `type` string to a builder.

    Args:
        kind: what is registered ("encoder", "fusion", ...), used in error messages.

    Example:
        ENCODERS = Registry("encoder")

        @ENCODERS.register("mlp")
        def mlp(features, spec, name, params): ...

        ENCODERS.get("mlp")
    """

    def __init__(self, kind):
        self.kind = kind
        self._entries = {}

    def register(self, name):
        def decorator(obj):
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name):
        if name not in self._entries:
            raise ConfigError(
                f"unknown {self.kind} type '{name}'{did_you_mean(name, self._entries)}; "
                f"choose one of: {', '.join(sorted(self._entries))}"
            )
        return self._entries[name]

    def names(self):
        return sorted(self._entries)

    def __contains__(self, name):
        return name in self._entries


class LayerRegistry(Registry):
    """A registry of Keras layers written as plain classes (`mmkeras.lazy.layer_class`): `get`
    gives the Layer class, registering it for `load_model` on first use; `layer_classes` all
    of them (what `load_model` needs before it reads a file).

    Example:
        FUSIONS = LayerRegistry("fusion")

        @FUSIONS.register("concat")
        class ConcatFusion(FusionLayer): ...

        FUSIONS.get("concat")  # a keras.layers.Layer subclass
    """

    def get(self, name):
        return layer_class(super().get(name))

    def layer_classes(self):
        return [self.get(name) for name in self.names()]
