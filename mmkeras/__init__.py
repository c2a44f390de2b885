"""mmkeras: train multimodal tf_keras models from one YAML config and export them for serving and TFLite."""

__version__ = "0.1.0"
