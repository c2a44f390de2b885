"""mmkeras: train multimodal tf_keras models from one YAML config and export them for serving and TFLite."""

# The config first: it reads the plugins' schemas (mmkeras.modalities), and a plugin imported
# before it would meet a half-built config package.
import mmkeras.config  # noqa: E402,F401

__version__ = "0.1.0"
