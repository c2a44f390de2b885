"""Image inputs: files decoded and resized in tf.data; pixel scaling inside the model."""
import tensorflow as tf
import tf_keras as keras

from mmkeras.data.modality import MODALITIES, Modality, resolve_file


def decode_image_bytes(contents, size, channels):
    """Encoded PNG/JPEG/BMP/GIF bytes → float32 [H, W, C] pixels in [0, 255].

    Shared by the training pipeline and the serving signature, so both resize identically.
    """
    image = tf.io.decode_image(contents, channels=channels, expand_animations=False)
    image = tf.image.resize(image, size, method="bilinear", antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0)


@MODALITIES.register("image")
class ImageModality(Modality):
    def parse_value(self, value, manifest_dir):
        return resolve_file(value, manifest_dir)

    def feature_shape(self):
        return (*self.cfg.size, self.cfg.channels)

    def decode(self, path):
        return decode_image_bytes(tf.io.read_file(path), self.cfg.size, self.cfg.channels)

    def preprocess(self, x):
        return keras.layers.Rescaling(1.0 / 255, name=f"{self.name}_rescale")(x)
