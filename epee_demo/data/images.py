"""Image input: checking an uploaded image, and turning images into model tensors.

The pipeline mirrors how MedMNIST made its 2D datasets from the source images:
center crop to the short edge, grayscale or RGB (the model's channels), resize to 28x28. The MedMNIST v2 paper and
its MedMNIST+ notes name the crop but not the resampling filter; we use Pillow's
bicubic filter, which antialiases when it shrinks. The dataset's own 28x28 arrays
pass through unchanged, so training and the page see pixels made the same way.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from epee_demo.data.preprocess import InputError

MAX_PIXELS = 40_000_000
MIN_SIDE = 8
ACCEPTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
RESAMPLE = Image.Resampling.BICUBIC


def _open(source) -> Image.Image:
    """Open a path, bytes or file object lazily (header only), refusing non-images."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputError("No image file was found: it may have expired. Please upload it again.")  # no server path
        if path.stat().st_size == 0:
            raise InputError("The uploaded file is empty.")
        source = str(path)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise InputError("The uploaded file is empty.")
        source = io.BytesIO(bytes(source))
    try:
        return Image.open(source, formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as err:
        raise InputError(
            f"This image is far too large to analyze (over {MAX_PIXELS // 1_000_000} megapixels). "
            "Please upload a smaller image."
        ) from err
    except UnidentifiedImageError as err:
        raise InputError(
            "This file is not an image the demo can read. Please upload a PNG or JPEG "
            f"(also accepted: {', '.join(f for f in ACCEPTED_FORMATS if f not in ('PNG', 'JPEG'))})."
        ) from err
    except ValueError as err:  # e.g. a compressed text chunk that inflates past Pillow's limit
        raise InputError(
            "This image file holds more metadata than the demo reads safely (a compressed text chunk "
            "that inflates too far). Please export the image again without it."
        ) from err


def _array_to_image(array: np.ndarray) -> Image.Image:
    """A uint8 or uint16 array [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] as a PIL image."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InputError(
            f"An image array must be [height, width] or [height, width, 3 or 4]; got shape {array.shape}."
        )
    if array.dtype == np.uint16 and array.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(array, dtype="<u2"))
    if array.dtype != np.uint8:
        raise InputError(
            f"An image array must hold uint8 pixels (or uint16 for grayscale); got {array.dtype}."
        )
    return Image.fromarray(np.ascontiguousarray(array))


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise InputError(
            f"This image is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); the limit "
            f"is {MAX_PIXELS // 1_000_000} megapixels. Please upload a smaller image."
        )
    if min(width, height) < MIN_SIDE:
        raise InputError(
            f"This image is only {width}x{height} pixels; it needs at least {MIN_SIDE} pixels "
            "on each side to show anything."
        )


def load_image(source) -> Image.Image:
    """A checked, fully decoded image from a file path, bytes, PIL image or numpy array.

    The size is checked from the header before any pixel is decoded: more than
    ``MAX_PIXELS`` pixels, or a side shorter than ``MIN_SIDE``, is refused. Animated
    images give their first frame; JPEG EXIF orientation is applied. Anything that is
    not a readable image raises ``InputError`` with a message for the person.
    """
    if source is None:
        raise InputError("Please upload an image (nothing was given).")
    if isinstance(source, np.ndarray):
        image = _array_to_image(source)
        _check_size(*image.size)
        return image
    if not isinstance(source, (Image.Image, str, Path, bytes, bytearray, memoryview)):
        raise InputError(f"An image must be a file, bytes, PIL image or array, not {type(source).__name__}.")
    image = source if isinstance(source, Image.Image) else _open(source)
    _check_size(*image.size)
    try:
        if getattr(image, "is_animated", False):
            image.seek(0)
        image.load()
        return ImageOps.exif_transpose(image)  # a copy: one frame, the caller's image untouched
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise InputError(
            "This image file is damaged or truncated and cannot be decoded. Please upload it again "
            "or export it anew."
        ) from err


def _high_depth_to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale a more-than-8-bit grayscale array to uint8 by the common depth its values fit.

    Values up to 255 are taken as 8-bit, up to 4095 as 12-bit (what X-ray detectors and
    DICOM exports give), else as 16-bit (x / 257, so an 8-bit image stored as 16-bit comes
    back exactly); float images with values in [0, 1] are scaled by 255. Pillow's own
    conversion would clip everything above 255 to white instead.
    """
    values = np.clip(array.astype(np.float32), 0.0, None)
    peak = float(values.max()) if values.size else 0.0
    if array.dtype.kind == "f" and peak <= 1.0:
        scale = 1.0
    else:
        scale = next((depth for depth in (255.0, 4095.0, 65535.0) if peak <= depth), peak)
    return np.rint(values * np.float32(255.0 / scale)).clip(0, 255).astype(np.uint8)


HIGH_DEPTH_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")
GRAY_MODES = frozenset(("1", "L", "LA", "La") + HIGH_DEPTH_MODES)
# Largest difference between a pixel's channels and their mean that still counts as gray
# (JPEG's chroma noise in a gray picture saved as colour stays well below it).
GRAY_TOLERANCE = 8


def _flatten(image: Image.Image) -> Image.Image:
    """An 8-bit "L" or "RGB" image, or one Pillow converts to either directly: more-than-8-bit
    grayscale is scaled (not clipped) and transparency is composited on black."""
    if image.mode in HIGH_DEPTH_MODES:
        return Image.fromarray(_high_depth_to_uint8(np.asarray(image)))
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    if image.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return image.convert("RGB")
    return image


def to_grayscale(image: Image.Image) -> Image.Image:
    """An 8-bit grayscale ("L") version of any image (Pillow's ITU-R 601-2 luma for colour);
    transparency is composited on black."""
    return image if image.mode == "L" else _flatten(image).convert("L")


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit "RGB" version of any image (gray copied into all three channels); transparency
    is composited on black."""
    return image if image.mode == "RGB" else _flatten(image).convert("RGB")


def is_grayscale(image: Image.Image) -> bool:
    """Whether an image holds no colour: a gray mode, or colour channels that (nearly) agree everywhere."""
    if image.mode in GRAY_MODES:
        return True
    small = image.copy()
    small.thumbnail((64, 64))
    rgb = np.asarray(to_rgb(small), dtype=np.int16)
    return int(np.abs(rgb - rgb.mean(axis=2, keepdims=True)).max()) <= GRAY_TOLERANCE


def center_square(image: Image.Image) -> Image.Image:
    """The centered square crop whose side is the image's short edge (as MedMNIST cropped)."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image if width == height else image.crop((left, top, left + side, top + side))


class ImagePreprocessor:
    """Turns images into ``{"pixel_values": float [B, C, S, S]}`` the way training did.

    ``settings`` is the model's ``preprocess`` dict: ``size`` S, ``channels`` C (1 for
    grayscale, 3 for RGB), ``mean`` and ``std`` (one value per channel, on pixels scaled to [0, 1]).
    """

    def __init__(self, settings: dict):
        self.channels = int(settings.get("channels", 1))
        if self.channels not in (1, 3):
            raise ValueError(f"only grayscale (channels=1) or RGB (channels=3) models are supported, "
                             f"got {self.channels}")
        self.size = int(settings["size"])
        self.mean = np.broadcast_to(np.asarray(settings["mean"], dtype=np.float32).reshape(-1), self.channels)
        self.std = np.broadcast_to(np.asarray(settings["std"], dtype=np.float32).reshape(-1), self.channels)

    @property
    def color_name(self) -> str:
        return "grayscale" if self.channels == 1 else "RGB"

    @property
    def pixel_shape(self) -> tuple[int, ...]:
        """The shape of ``pixels``: (S, S) for grayscale, (S, S, 3) for RGB."""
        return (self.size, self.size) if self.channels == 1 else (self.size, self.size, 3)

    def pixels(self, image) -> np.ndarray:
        """What the model sees before normalization: uint8 [S, S] or [S, S, 3].

        A uint8 array of exactly that shape (a dataset image) is used as it is; anything else
        goes through ``load_image``, center crop, conversion to the model's channels and a
        bicubic resize.
        """
        if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape == self.pixel_shape:
            return image
        square = center_square(load_image(image))
        converted = to_grayscale(square) if self.channels == 1 else to_rgb(square)
        if converted.size != (self.size, self.size):
            converted = converted.resize((self.size, self.size), RESAMPLE)
        return np.asarray(converted, dtype=np.uint8)

    def conversion_notice(self, image) -> str:
        """A warning when the image's colour does not match the model's ("" when it does).

        The image is converted as every input is (``pixels``): colour to grayscale by
        Pillow's luma, gray to RGB by copying it into the three channels.
        """
        image = load_image(image)
        gray = is_grayscale(image)
        if self.channels == 1 and not gray:
            return ("⚠️ **Colour image, grayscale model.** This model was trained on grayscale images, so the "
                    "image was converted to grayscale (Pillow's ITU-R 601-2 luma, L = 0.299 R + 0.587 G + "
                    "0.114 B), as every input is. Colour information is lost.")
        if self.channels == 3 and gray:
            return ("⚠️ **Grayscale image, colour model.** This model was trained on colour (RGB) images, so "
                    "the gray level was copied into the red, green and blue channels, as every input is. "
                    "The model never saw such an image in training: its answer may mean little.")
        return ""

    def __call__(self, images: list) -> dict:
        batch = torch.from_numpy(np.stack([self.pixels(image) for image in images]).astype(np.float32))
        batch = batch.unsqueeze(1) if self.channels == 1 else batch.permute(0, 3, 1, 2)
        mean = torch.from_numpy(self.mean.copy()).view(1, -1, 1, 1)
        std = torch.from_numpy(self.std.copy()).view(1, -1, 1, 1)
        return {"pixel_values": ((batch / 255.0 - mean) / std).contiguous()}

    def model_view(self, image, display_size: int = 224) -> np.ndarray:
        """The S x S pixels the model sees, enlarged with nearest-neighbour to about
        ``display_size`` (a whole multiple of S) for display: uint8 [k*S, k*S] or [k*S, k*S, 3]."""
        scale = max(1, display_size // self.size)
        return self.pixels(image).repeat(scale, axis=0).repeat(scale, axis=1)


def augment(images: list, rng: np.random.Generator, max_degrees: float = 10.0,
            max_shift_pixels: float = 2.0, flip: bool = False, min_crop: float = 1.0) -> list:
    """Light training augmentation for uint8 images of one shape, [H, W] or [H, W, C]: a random
    rotation within +-``max_degrees`` and shift within +-``max_shift_pixels`` each way (bilinear,
    edges extended), and with ``flip`` a left-right mirror of half the images. Flip only where a
    mirrored image is one the model should expect: not for chest X-rays (fixed left-right
    anatomy, heart on the patient's left), but for fundus photographs (a left eye mirrors a right).
    With ``min_crop`` < 1, a random resized crop too: a square of side uniform in
    [``min_crop``, 1] of the image's, enlarged back to the image's size (about its centre, before the shift).
    """
    stacked = np.stack(images).astype(np.float32)
    batch = torch.from_numpy(stacked)
    batch = batch.unsqueeze(1) if stacked.ndim == 3 else batch.permute(0, 3, 1, 2)
    count, _, height, width = batch.shape
    angles = np.deg2rad(rng.uniform(-max_degrees, max_degrees, count))
    shifts = rng.uniform(-max_shift_pixels, max_shift_pixels, (count, 2)) * 2.0 / np.array([width, height])
    mirror = np.where(rng.random(count) < 0.5, -1.0, 1.0) if flip else np.ones(count)
    crop = rng.uniform(min_crop, 1.0, count) if min_crop < 1.0 else np.ones(count)
    cos, sin = np.cos(angles) * crop, np.sin(angles) * crop
    theta = torch.tensor(np.stack([
        np.stack([cos * mirror, -sin, shifts[:, 0]], axis=1),
        np.stack([sin * mirror, cos, shifts[:, 1]], axis=1),
    ], axis=1), dtype=torch.float32)
    grid = torch.nn.functional.affine_grid(theta, list(batch.shape), align_corners=False)
    moved = torch.nn.functional.grid_sample(batch, grid, mode="bilinear", padding_mode="border",
                                            align_corners=False)
    moved = moved.round().clamp(0, 255).to(torch.uint8)
    out = moved.squeeze(1) if stacked.ndim == 3 else moved.permute(0, 2, 3, 1)
    return list(out.numpy())
