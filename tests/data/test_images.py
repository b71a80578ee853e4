import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from epee_demo.data.images import (
    MAX_PIXELS, MIN_SIDE, ImagePreprocessor, augment, center_square, is_grayscale, load_image, to_grayscale,
    to_rgb,
)
from epee_demo.data.preprocess import InputError

SETTINGS = {"size": 28, "channels": 1, "mean": [0.5], "std": [0.5]}


def xray_like(size=28, seed=0) -> np.ndarray:
    """A uint8 [size, size] image spanning 0..255 (a gradient with noise)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size)[None, :] * np.linspace(0.3, 1.0, size)[:, None]
    image = ramp + rng.normal(0, 20, (size, size))
    image[0, 0], image[-1, -1] = 0, 255
    return np.clip(image, 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but which holds almost no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


# --- inputs that must be refused with a clear message -------------------------------------------

def test_non_image_bytes_are_refused():
    with pytest.raises(InputError, match="not an image"):
        load_image(b"Patient is a 54-year-old man with cough.")


def test_non_image_file_is_refused(tmp_path):
    path = tmp_path / "note.png"
    path.write_text("not really a PNG")
    with pytest.raises(InputError, match="PNG or JPEG"):
        load_image(path)


def test_missing_file_empty_bytes_and_nothing_are_refused(tmp_path):
    with pytest.raises(InputError, match="No image file"):
        load_image(tmp_path / "absent.png")
    with pytest.raises(InputError, match="empty"):
        load_image(b"")
    with pytest.raises(InputError, match="upload an image"):
        load_image(None)
    with pytest.raises(InputError, match="not int"):
        load_image(42)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_is_refused(fmt):
    data = encode(Image.fromarray(xray_like(256)), fmt)
    with pytest.raises(InputError, match="damaged or truncated"):
        load_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_from_the_header():
    with pytest.raises(InputError, match="too large"):
        load_image(png_header_only(20_000, 20_000))


def test_size_limit_is_checked_before_decoding():
    # 49 megapixels: past our limit but below Pillow's own bomb check. The pixel data is
    # missing, so decoding first would report a damaged file instead of the size.
    with pytest.raises(InputError, match=f"limit is {MAX_PIXELS // 1_000_000} megapixels"):
        load_image(png_header_only(7000, 7000))


@pytest.mark.parametrize("size", [(1, 1), (100, MIN_SIDE - 1)])
def test_tiny_images_are_refused(size):
    with pytest.raises(InputError, match=f"at least {MIN_SIDE} pixels"):
        load_image(encode(Image.new("L", size), "PNG"))
    with pytest.raises(InputError, match=f"at least {MIN_SIDE} pixels"):
        load_image(np.zeros(size[::-1], dtype=np.uint8))


@pytest.mark.parametrize("array, message", [
    (np.zeros((28, 28), dtype=np.float64), "uint8"),
    (np.zeros((28, 28, 2), dtype=np.uint8), "shape"),
    (np.zeros(28, dtype=np.uint8), "shape"),
])
def test_unusable_arrays_are_refused(array, message):
    with pytest.raises(InputError, match=message):
        load_image(array)


def test_preprocessor_refuses_bad_images_with_input_error():
    with pytest.raises(InputError, match=f"at least {MIN_SIDE} pixels"):
        ImagePreprocessor(SETTINGS)([np.zeros((1, 1), dtype=np.uint8)])


# --- inputs that must work ----------------------------------------------------------------------

def test_dataset_array_gives_exactly_the_training_tensor():
    pixels = xray_like()
    values = ImagePreprocessor(SETTINGS)([pixels, pixels])["pixel_values"]
    expected = (pixels.astype(np.float32) / 255.0 - 0.5) / 0.5
    assert values.shape == (2, 1, 28, 28) and values.dtype.is_floating_point
    np.testing.assert_array_equal(values[0, 0].numpy(), expected)


def test_dataset_image_as_png_or_pil_matches_the_array():
    pixels = xray_like()
    preprocess = ImagePreprocessor(SETTINGS)
    from_array = preprocess([pixels])["pixel_values"]
    for source in (encode(Image.fromarray(pixels), "PNG"), Image.fromarray(pixels),
                   Image.fromarray(pixels).convert("RGB")):
        np.testing.assert_array_equal(preprocess([source])["pixel_values"].numpy(), from_array.numpy())


def test_sixteen_bit_images_are_scaled_not_clipped():
    pixels = xray_like()
    preprocess = ImagePreprocessor(SETTINGS)
    full_range = Image.fromarray(pixels.astype(np.uint16) * 257)
    loaded = load_image(encode(full_range, "PNG"))
    assert loaded.mode.startswith("I")
    np.testing.assert_array_equal(preprocess.pixels(loaded), pixels)
    twelve_bit = np.round(pixels.astype(np.float64) * 4095 / 255).astype(np.uint16)
    np.testing.assert_array_equal(preprocess.pixels(twelve_bit), pixels)


def test_rgba_is_composited_on_black():
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[:, :20, 3] = 255  # left half opaque, right half transparent
    gray = np.asarray(to_grayscale(load_image(encode(Image.fromarray(rgba), "PNG"))))
    assert gray.shape == (40, 40)
    assert (gray[:, :20] == 200).all() and (gray[:, 20:] == 0).all()


def test_cmyk_palette_and_bilevel_images_work():
    preprocess = ImagePreprocessor(SETTINGS)
    cmyk = load_image(encode(Image.new("CMYK", (64, 48), (0, 0, 0, 0)), "JPEG"))
    assert cmyk.mode == "CMYK"
    palette = Image.fromarray(xray_like(64)).convert("P")
    bilevel = Image.fromarray(xray_like(64)).convert("1")
    values = preprocess([cmyk, load_image(encode(palette, "PNG")), bilevel])["pixel_values"]
    assert values.shape == (3, 1, 28, 28)
    np.testing.assert_allclose(values[0].numpy(), 1.0, atol=0.02)  # CMYK no ink = white


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("L", (32, 32), 40), Image.new("L", (32, 32), 220)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    image = load_image(data)
    assert getattr(image, "n_frames", 1) == 1
    assert np.asarray(to_grayscale(image)).max() == 40


def test_large_legal_image_is_center_cropped_and_resized():
    inner = xray_like(28)
    middle = np.kron(inner, np.ones((100, 100), dtype=np.uint8))  # 2800 x 2800
    wide = np.full((2800, 4000), 255, dtype=np.uint8)
    wide[:, 600:3400] = middle
    image = load_image(encode(Image.fromarray(wide), "PNG"))
    assert image.size == (4000, 2800)
    preprocess = ImagePreprocessor(SETTINGS)
    expected = np.asarray(Image.fromarray(middle).resize((28, 28), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(preprocess.pixels(image), expected)
    assert center_square(Image.fromarray(wide)).size == (2800, 2800)


def test_model_view_shows_the_model_pixels_enlarged():
    pixels = xray_like()
    view = ImagePreprocessor(SETTINGS).model_view(pixels)
    assert view.shape == (224, 224) and view.dtype == np.uint8
    np.testing.assert_array_equal(view[::8, ::8], pixels)
    assert ImagePreprocessor(SETTINGS).model_view(pixels, display_size=100).shape == (84, 84)


# --- augmentation -------------------------------------------------------------------------------

def test_augment_without_motion_is_the_identity():
    images = [xray_like(seed=s) for s in range(4)]
    out = augment(images, np.random.default_rng(0), max_degrees=0.0, max_shift_pixels=0.0)
    for before, after in zip(images, out):
        np.testing.assert_array_equal(before, after)


def test_augment_moves_images_reproducibly():
    images = [xray_like(seed=s) for s in range(4)]
    first = augment(images, np.random.default_rng(1))
    again = augment(images, np.random.default_rng(1))
    assert all(a.shape == (28, 28) and a.dtype == np.uint8 for a in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert all(not np.array_equal(a, b) for a, b in zip(first, images))
    # light: the picture stays close to the original
    assert np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(first, images)]) < 40


def test_augment_flip_mirrors_about_half_the_images_and_keeps_rgb():
    images = [np.stack([xray_like(seed=s), xray_like(seed=s + 9), xray_like(seed=s + 19)], axis=-1)
              for s in range(40)]
    out = augment(images, np.random.default_rng(2), max_degrees=0.0, max_shift_pixels=0.0, flip=True)
    assert all(a.shape == (28, 28, 3) and a.dtype == np.uint8 for a in out)
    mirrored = [np.array_equal(after, before[:, ::-1]) for before, after in zip(images, out)]
    same = [np.array_equal(after, before) for before, after in zip(images, out)]
    assert all(m or s for m, s in zip(mirrored, same))
    assert 10 <= sum(mirrored) <= 30


def test_augment_random_resized_crop_enlarges_the_centre():
    ring = np.zeros((28, 28), dtype=np.uint8)
    ring[:4], ring[-4:], ring[:, :4], ring[:, -4:] = 255, 255, 255, 255  # a bright frame 4 pixels wide
    images = [ring] * 8
    out = augment(images, np.random.default_rng(3), max_degrees=0.0, max_shift_pixels=0.0, min_crop=0.5)
    assert all(a.shape == (28, 28) and a.dtype == np.uint8 for a in out)
    assert all(a.mean() < ring.mean() for a in out)  # the crop leaves out part of the frame
    assert all(a[14, 14] == 0 for a in out)  # the centre stays where it was
    np.testing.assert_array_equal(
        augment(images, np.random.default_rng(3), max_degrees=0.0, max_shift_pixels=0.0, min_crop=1.0), images)


# --- colour: RGB models, and the wrong colour for a model ---------------------------------------

RGB_SETTINGS = {"size": 28, "channels": 3, "mean": [0.5, 0.4, 0.3], "std": [0.5, 0.25, 0.2]}


def fundus_like(size=28, seed=0) -> np.ndarray:
    """A uint8 [size, size, 3] colour image (a different pattern in each channel)."""
    return np.stack([xray_like(size, seed), xray_like(size, seed + 1)[::-1], xray_like(size, seed + 2).T], axis=-1)


def test_rgb_dataset_array_gives_exactly_the_training_tensor():
    pixels = fundus_like()
    values = ImagePreprocessor(RGB_SETTINGS)([pixels])["pixel_values"]
    assert values.shape == (1, 3, 28, 28)
    for channel, (mean, std) in enumerate(zip(RGB_SETTINGS["mean"], RGB_SETTINGS["std"])):
        expected = (pixels[..., channel].astype(np.float32) / 255.0 - np.float32(mean)) / np.float32(std)
        np.testing.assert_allclose(values[0, channel].numpy(), expected, rtol=1e-6, atol=1e-6)
    from_png = ImagePreprocessor(RGB_SETTINGS)([encode(Image.fromarray(pixels), "PNG")])["pixel_values"]
    np.testing.assert_array_equal(from_png.numpy(), values.numpy())


def test_gray_input_to_an_rgb_model_is_copied_into_three_channels_with_a_notice():
    preprocess = ImagePreprocessor(RGB_SETTINGS)
    gray = xray_like()
    pixels = preprocess.pixels(gray)
    assert pixels.shape == (28, 28, 3)
    assert all(np.array_equal(pixels[..., c], gray) for c in range(3))
    assert "Grayscale image, colour model" in preprocess.conversion_notice(gray)
    assert "Grayscale image, colour model" in preprocess.conversion_notice(Image.fromarray(gray).convert("RGB"))
    assert preprocess.conversion_notice(fundus_like()) == ""
    assert preprocess.model_view(gray).shape == (224, 224, 3)


def test_colour_input_to_a_grayscale_model_is_converted_by_luma_with_a_notice():
    preprocess = ImagePreprocessor(SETTINGS)
    colour = fundus_like()
    expected = np.asarray(Image.fromarray(colour).convert("L"))
    np.testing.assert_array_equal(preprocess.pixels(colour), expected)
    assert "Colour image, grayscale model" in preprocess.conversion_notice(colour)
    assert preprocess.conversion_notice(xray_like()) == ""
    assert preprocess.conversion_notice(Image.fromarray(xray_like()).convert("RGB")) == ""  # gray saved as RGB


def test_rgb_conversion_of_unusual_modes():
    sixteen = Image.fromarray(xray_like().astype(np.uint16) * 257)
    np.testing.assert_array_equal(np.asarray(to_rgb(sixteen))[..., 1], xray_like())
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., 0], rgba[:, :5, 3] = 200, 255
    rgb = np.asarray(to_rgb(Image.fromarray(rgba)))
    assert (rgb[:, :5, 0] == 200).all() and (rgb[:, 5:] == 0).all()
    assert np.asarray(to_rgb(Image.new("CMYK", (10, 10), (0, 0, 0, 0)))).min() == 255
    assert is_grayscale(Image.new("CMYK", (10, 10), (0, 0, 0, 50)))
    assert not is_grayscale(Image.new("CMYK", (10, 10), (200, 0, 0, 0)))
    assert is_grayscale(Image.new("I;16", (10, 10))) and is_grayscale(Image.new("LA", (10, 10)))


def test_only_one_or_three_channels_are_supported():
    with pytest.raises(ValueError, match="channels=3"):
        ImagePreprocessor({**SETTINGS, "channels": 4})
