"""Image inputs: files decoded and resized in tf.data; pixel scaling inside the model."""
import dataclasses
import functools
import math
from typing import Annotated, Literal

import pydantic
from PIL import Image, UnidentifiedImageError

from mmkeras.config.base import Int, section
from mmkeras.encoders import default_encoder, encoder_choice
from mmkeras.errors import op_error_reason
from mmkeras.lazy import keras, tf
from mmkeras.modalities.base import BadValue, InputConfig, Modality, float_range, header_int, register, resolve_file


def _image_size(size):
    if len(size) != 2 or min(size) < 8:
        raise ValueError(f"expected [height, width], each >= 8, got {size}")
    return size


@section
class ImageInput(InputConfig):
    """An image file (PNG/JPEG/BMP/GIF), decoded, resized to `size` = [height, width]."""

    type: Literal["image"] = "image"
    size: Annotated[list[Int], pydantic.AfterValidator(_image_size)] = dataclasses.field(
        default_factory=lambda: [64, 64])
    channels: Literal[1, 3] = 3
    encoder: encoder_choice("image") = default_encoder("cnn")

# What tf.io.decode_image reads; PIL opens more (WebP, TIFF) that would fail later in tf.data.
TF_IMAGE_FORMATS = {"PNG", "JPEG", "GIF", "BMP"}


# Bound on decoded size, read from the header before any pixel is decoded: a small file can
# declare a huge image (a decompression bomb), and validation and tf.data would both decode it
# in full. Below PIL's own limit (89 MP warns, 179 MP raises), so PIL never gets that far.
MAX_IMAGE_PIXELS = 50_000_000


def check_image(path, channels=3):
    """Decode an image once, with the decoder tf.data will use, so a file it cannot read (or would
    read wrongly) is a bad record now rather than an error mid-epoch.

    `check_image_header`, then `decode_pixels` on the pixels, as `decode_image_bytes` will:
    1-bit or RLE-compressed BMPs, CMYK JPEGs and GIFs for a one-channel input open in PIL but
    not in TensorFlow. Validation runs the header check per record and the decode for many
    files at once (`undecodable_images`); this is the one-file form that names the reason.
    """
    check_image_header(path)
    try:
        _compiled_decode(channels)(tf.io.read_file(path))
    except tf.errors.OpError as e:
        # "{{function_node ...}} channels must be 0 or 3 for GIF, got 1 [Op:DecodeImage]" → the reason.
        raise BadValue(f"TensorFlow cannot decode this image as {channels}-channel: {path} "
                       f"({op_error_reason(e)})") from None


def check_image_header(path):
    """What PIL tells from the header alone (~0.03 ms a file): a format TensorFlow decodes, the
    pixel bound, no palette BMP. BadValue naming the file otherwise."""
    try:
        with Image.open(path) as image:
            if image.format not in TF_IMAGE_FORMATS:
                raise BadValue(f"unsupported image format {image.format} (use PNG, JPEG, GIF or BMP): {path}")
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise BadValue(f"image of {width}×{height} pixels is over the {MAX_IMAGE_PIXELS // 10**6}-megapixel "
                               f"bound: {path}")
            if image.format == "BMP" and image.mode == "P":
                # TensorFlow's BMP decoder returns the palette indices as grey levels: wrong pixels, no error.
                raise BadValue(f"8-bit palette BMP (TensorFlow reads its palette indices as grey levels; "
                               f"save it as PNG or 24-bit BMP): {path}")
    except Image.DecompressionBombError as e:
        raise BadValue(f"image over the pixel bound: {path} ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise BadValue(f"not a readable image: {path} ({str(e).splitlines()[0]})") from None


def undecodable_images(paths, channels):
    """Positions in `paths` that `decode_pixels` fails on, from one parallel tf.data pass.

    A compiled decode called from Python costs ~1 ms an image whatever the threads (the calls
    serialise); tf.data's parallel map decodes the same files at ~0.3 ms each: validating
    emoji_vendors' 3616 records went from 5.7 s to 1.6 s. Failing files are dropped by
    `ignore_errors`, so the positions that do not come out are the failures.
    """
    decode = _compiled_decode(channels)

    @tf.autograph.experimental.do_not_convert
    def decoded(position, path):
        return position, tf.shape(decode(tf.io.read_file(path)))

    dataset = (tf.data.Dataset.from_tensor_slices((tf.range(len(paths), dtype=tf.int64), tf.constant(paths)))
               .map(decoded, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
               .ignore_errors().map(lambda position, _: position).batch(4096))
    done = set()
    for positions in dataset.as_numpy_iterator():
        done.update(positions.tolist())
    return [i for i in range(len(paths)) if i not in done]


def _reason(path, channels):
    """Why `check_image` rejects `path` (or None if it now accepts it: a file that changed)."""
    try:
        check_image(path, channels)
    except BadValue as e:
        return str(e)
    return None


@functools.lru_cache(maxsize=None)
def _compiled_decode(channels):
    """`decode_pixels` as one compiled function per channel count, for validation's checks.

    Validation decodes every image of every split; run eagerly, the header bound's few dozen
    small ops cost 2.3 ms an image against 0.5 ms compiled, and eight validation threads
    running eager ops mostly wait for each other: validating digits_av's 5000 records took
    36.4 s eagerly and takes 8.6 s compiled.
    """
    return tf.function(lambda contents: decode_pixels(contents, channels), autograph=False,
                       input_signature=[tf.TensorSpec([], tf.string)])


def _header_bytes(contents, n=32):
    """The first `n` bytes of an encoded image as int64 (zeros past its end)."""
    head = tf.cast(tf.io.decode_raw(tf.strings.substr(contents, 0, n), tf.uint8), tf.int64)
    return tf.pad(head, [[0, n - tf.shape(head)[0]]])


def declared_size(contents):
    """(height, width) an encoded PNG/JPEG/GIF/BMP declares in its header, read without decoding
    (graph ops only, for the serving signature); (0, 0) for anything else (its decode fails anyway)."""
    head = _header_bytes(contents)

    def starts(magic):
        return tf.reduce_all(tf.equal(head[:len(magic)], tf.constant(list(magic), tf.int64)))

    def bmp():
        height = header_int(head, 22, 4)  # signed: negative for top-down rows
        height = tf.where(height >= 2**31, 2**32 - height, height)
        return tf.stack([height, header_int(head, 18, 4)])

    return tf.case([
        (starts(b"\x89PNG"), lambda: tf.stack([header_int(head, 20, 4, big_endian=True),
                                                header_int(head, 16, 4, big_endian=True)])),
        (starts(b"GIF8"), lambda: tf.stack([header_int(head, 8, 2), header_int(head, 6, 2)])),
        (starts(b"BM"), bmp),
        (starts(b"\xff\xd8"), lambda: tf.cast(tf.image.extract_jpeg_shape(contents)[:2], tf.int64)),
    ], default=lambda: tf.zeros([2], tf.int64))


def decode_pixels(contents, channels):
    """Encoded PNG/JPEG/BMP/GIF bytes → uint8 [H, W, channels]: the one decoder validation, the
    training pipeline and the serving signature all use, so a file validation accepts decodes later.

    The size the header declares is bounded before any pixel is decoded: validation checks it
    with PIL first, but the serving signature takes any bytes a client sends, and a 100-byte
    PNG can declare 40 000 × 40 000 pixels (4.8 GB decoded). Over MAX_IMAGE_PIXELS the request
    fails with InvalidArgument naming the size, as TF Serving returns it.
    """
    size = declared_size(contents)
    bounded = tf.debugging.Assert(
        size[0] * size[1] <= MAX_IMAGE_PIXELS,
        [f"image over the {MAX_IMAGE_PIXELS // 10**6}-megapixel bound; declared height, width:", size], summarize=2)
    with tf.control_dependencies([bounded]):
        return tf.io.decode_image(contents, channels=channels, expand_animations=False)


def decode_image_bytes(contents, size, channels):
    """Encoded PNG/JPEG/BMP/GIF bytes → float32 [H, W, C] pixels in [0, 255].

    Shared by the training pipeline and the serving signature, so both resize identically.
    """
    image = decode_pixels(contents, channels)
    # Already the input's size (pre-resized data sets): the antialiased resize would return the
    # same pixels (measured: identical) at 2.3× the decode's CPU cost, so it is skipped.
    same_size = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))
    image = tf.cond(same_size, lambda: tf.cast(image, tf.float32),
                    lambda: tf.image.resize(image, size, method="bilinear", antialias=True))
    return tf.ensure_shape(tf.clip_by_value(image, 0.0, 255.0), [*size, channels])


def patch_grid(image_shape, patch_size):
    """(rows, columns) of patch_size×patch_size patches over [B, H, W, C]; a partial last row and
    column count (they are zero-padded)."""
    return tuple(math.ceil(side / patch_size) for side in image_shape[1:3])


@register
class ImageModality(Modality):
    config = ImageInput
    reads_files = True

    def parse_value(self, value, manifest_dir):
        path = resolve_file(value, manifest_dir)
        check_image_header(path)  # the pixels in one pass per chunk: `check_files`
        return path

    def check_files(self, values):
        reasons = {i: _reason(values[i], self.cfg.channels) for i in undecodable_images(values, self.cfg.channels)}
        return {i: reason for i, reason in reasons.items() if reason}

    def feature_shape(self):
        return (*self.cfg.size, self.cfg.channels)

    def decode(self, path):
        return decode_image_bytes(tf.io.read_file(path), self.cfg.size, self.cfg.channels)

    def from_raw(self, raw):
        # Empty bytes (an absent image) decode to zeros instead of failing the batch.
        def one(contents):
            return tf.cond(tf.strings.length(contents) > 0,
                           lambda: decode_image_bytes(contents, self.cfg.size, self.cfg.channels),
                           lambda: tf.zeros(self.feature_shape()))

        return tf.map_fn(one, raw, fn_output_signature=tf.TensorSpec(self.feature_shape(), tf.float32))

    def raw_example(self, value):
        if value is None:
            return b""
        with open(value, "rb") as f:
            return f.read()

    def preprocess(self, x):
        return keras.layers.Rescaling(1.0 / 255, name=f"{self.name}_rescale")(x)

    @staticmethod
    def tokens(features, spec, name, dim, params):
        """Non-overlapping patch_size×patch_size patches, the image zero-padded at the bottom and right
        to whole patches (a strided conv alone would drop the last H mod patch_size rows and
        columns: 3 of each at 75 px with 8 px patches); row-major, like a CNN's cells."""
        patch = params.patch_size  # ImageInput's encoder check keeps it within the image
        rows, cols = patch_grid(features.shape, patch)
        pad_h, pad_w = rows * patch - features.shape[1], cols * patch - features.shape[2]
        if pad_h or pad_w:
            features = keras.layers.ZeroPadding2D(((0, pad_h), (0, pad_w)), name=f"{name}_pad")(features)
        # Non-overlapping patches: a conv whose stride equals its kernel is a per-patch Dense.
        patches = keras.layers.Conv2D(dim, patch, strides=patch, name=f"{name}_patches")(features)
        return keras.layers.Reshape((-1, dim), name=f"{name}_patch_tokens")(patches), None, (rows, cols)

    def app_preprocessing(self):
        height, width = self.cfg.size
        return {
            "decode": "PNG/JPEG/BMP/GIF (first frame) to RGB" if self.cfg.channels == 3 else "to grayscale",
            "size": {"height": height, "width": width}, "channels": self.cfg.channels, "layout": "NHWC, batch 1",
            "resize": "bilinear with antialiasing (tf.image.resize(method='bilinear', antialias=True)), "
                      "aspect ratio not kept",
            "values": "float32 pixels in [0, 255], not normalised (the model rescales to [0, 1])",
        }

    def tflite_metadata(self, lib, name, described, detail):
        height, width = self.cfg.size
        grey = self.cfg.channels == 1
        return lib.info.InputImageTensorMd(
            name=name, description=f"{self.name}: {height}x{width} {'grey' if grey else 'RGB'} pixels in [0, 255], "
                                   "resized bilinear with antialiasing; not normalised (the model rescales)."
                                   f"{float_range(detail)}",
            norm_mean=[0.0], norm_std=[1.0],
            color_space_type=lib.fb.ColorSpaceType.GRAYSCALE if grey else lib.fb.ColorSpaceType.RGB,
            tensor_type=lib.schema_fb.TensorType.FLOAT32 if detail["dtype"] == "float32" else None
        ).create_metadata(), {}
