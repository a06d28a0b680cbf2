"""Images load as they look: every Pillow mode to 8-bit RGB as a viewer shows it, or refused by name."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ltrank.data.images import readable_suffixes, to_rgb8
from ltrank.errors import LtrankError


def _image(mode: str, pixels: list, palette: list[int] | None = None, **info) -> Image.Image:
    image = Image.new(mode, (len(pixels), 1))
    if palette is not None:
        image.putpalette(palette)
    for x, value in enumerate(pixels):
        image.putpixel((x, 0), value)
    image.info.update(info)
    return image


def _sixteen(mode: str, values: list[int]) -> Image.Image:
    dtype = {"I;16": "<u2", "I;16L": "<u2", "I;16N": "=u2", "I;16B": ">u2"}[mode]
    data = np.asarray(values, dtype=dtype).tobytes()
    return Image.frombytes(mode, (len(values), 1), data)


WHITE = [255, 255, 255]
RED_BLUE = [255, 0, 0, 0, 0, 255]

CASES = {
    "1": (lambda: _image("1", [0, 1]), [[0, 0, 0], WHITE]),
    "L": (lambda: _image("L", [10, 200]), [[10] * 3, [200] * 3]),
    "P": (lambda: _image("P", [0, 1], RED_BLUE), [[255, 0, 0], [0, 0, 255]]),
    # a palette entry marked transparent: composited over white
    "P+transparency": (lambda: _image("P", [0, 1], RED_BLUE, transparency=0), [WHITE, [0, 0, 255]]),
    "PA": (lambda: _image("PA", [(0, 128), (1, 255)], RED_BLUE), [[255, 127, 127], [0, 0, 255]]),
    "LA": (lambda: _image("LA", [(100, 0), (100, 255), (100, 51)]), [WHITE, [100] * 3, [224] * 3]),
    "La": (lambda: _image("La", [(100, 255)]), [[100] * 3]),
    "RGBA": (lambda: _image("RGBA", [(10, 20, 30, 255), (10, 20, 30, 0), (0, 0, 0, 128)]),
             [[10, 20, 30], WHITE, [127] * 3]),
    "RGBa": (lambda: _image("RGBa", [(10, 20, 30, 255)]), [[10, 20, 30]]),
    "RGBX": (lambda: _image("RGBX", [(1, 2, 3, 4)]), [[1, 2, 3]]),
    "RGB": (lambda: _image("RGB", [(1, 2, 3)]), [[1, 2, 3]]),
    "CMYK": (lambda: _image("CMYK", [(0, 255, 255, 0), (0, 0, 0, 255), (0, 0, 0, 0)]), [[255, 0, 0], [0, 0, 0], WHITE]),
    "YCbCr": (lambda: _image("YCbCr", [(128, 128, 128)]), [[128] * 3]),
    "HSV": (lambda: _image("HSV", [(0, 255, 255), (85, 255, 255)]), [[255, 0, 0], [0, 255, 0]]),
    # L* = 50.2 (Pillow stores L* * 255 / 100), a* = b* = 0: sRGB grey 119
    "LAB": (lambda: _image("LAB", [(128, 128, 128)]), [[119] * 3]),
    # 16-bit grey: round(v * 255 / 65535), not clipped at 255 (the all-white 16-bit PNG)
    "I;16": (lambda: _sixteen("I;16", [0, 65535, 32768, 257, 1000]), [[0] * 3, [255] * 3, [128] * 3, [1] * 3, [4] * 3]),
    "I;16L": (lambda: _sixteen("I;16L", [65535, 32768]), [[255] * 3, [128] * 3]),
    "I;16B": (lambda: _sixteen("I;16B", [65535, 32768]), [[255] * 3, [128] * 3]),
    "I;16N": (lambda: _sixteen("I;16N", [65535, 32768]), [[255] * 3, [128] * 3]),
    "I": (lambda: _image("I", [0, 65535, 32768]), [[0] * 3, [255] * 3, [128] * 3]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_mode_maps_to_rgb8_as_a_viewer_shows_it(case):
    make, expected = CASES[case]
    out = to_rgb8(make())
    assert out.dtype == np.uint8 and out.shape == (1, len(expected), 3) and out.flags.c_contiguous
    assert out[0].tolist() == expected


@pytest.mark.parametrize("make,fragment", [
    (lambda: Image.new("F", (2, 1), 0.5), "mode F (32-bit float) image: floats have no standard display range"),
    (lambda: _image("I", [-1, 5]), "mode I image with values -1..5, beyond 16 bits"),
    (lambda: _image("I", [0, 70000]), "mode I image with values 0..70000, beyond 16 bits"),
])
def test_modes_without_a_faithful_rgb8_view_are_refused_by_name(make, fragment):
    with pytest.raises(LtrankError) as info:
        to_rgb8(make())
    assert str(info.value).startswith(fragment) and "save it as an 8- or 16-bit" in str(info.value)


def test_a_16_bit_png_file_keeps_its_greys():
    values = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    buffer.seek(0)
    with Image.open(buffer) as image:
        assert image.mode.startswith("I")  # what Pillow makes of a 16-bit grey PNG
        assert np.asarray(image.convert("RGB"))[0, :, 0].tolist() == [0, 255, 255, 255]  # Pillow clips
        assert to_rgb8(image)[0, :, 0].tolist() == [0, 4, 128, 255]


def test_exif_orientation_is_applied():
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)  # H=2, W=3
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: a viewer turns it 90 degrees clockwise
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", exif=exif)
    buffer.seek(0)
    with Image.open(buffer) as image:
        out = to_rgb8(image)
    assert out.shape == (3, 2, 3)
    assert out.tolist() == np.rot90(pixels, k=-1).tolist()


def test_readable_suffixes_cover_the_formats_users_have():
    assert {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"} <= readable_suffixes()
    assert ".pdf" not in readable_suffixes()  # Pillow writes PDF but cannot read it
