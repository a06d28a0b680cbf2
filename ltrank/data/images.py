"""Decoded images as 8-bit RGB, the way an image viewer shows them; one place for every loader.

Pillow's own ``convert("RGB")`` clips 16-bit grey to 255 (a 16-bit PNG turns all white) and
drops alpha, showing whatever colour the transparent pixels happen to hold. :func:`to_rgb8`
instead maps every mode explicitly:

* ``RGB``, ``RGBX``, ``L``, ``1``, ``P`` (opaque), ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``:
  Pillow's conversion to RGB (no colour profile is applied; CMYK uses Pillow's formula).
* 16-bit grey (``I;16``, ``I;16L``, ``I;16B``, ``I;16N``) and ``I`` with values in 0..65535:
  scaled to 0..255, ``round(v * 255 / 65535)``, then grey to RGB. (``I`` is how some files
  hold 16-bit data; ``I`` values outside 0..65535 are refused.)
* With transparency (``RGBA``, ``RGBa``, ``LA``, ``La``, ``PA``, ``P`` with a transparent
  colour): composited over white, ``round(c * a / 255 + 255 * (1 - a / 255))``, as a page or
  document viewer shows a transparent image.
* ``F`` (32-bit float) has no standard display range and is refused by name, as is any mode
  not listed here.

EXIF orientation is applied first (a phone photo stored sideways is shown upright), and a
multi-frame file (GIF, TIFF, WebP) gives its first frame.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageOps

from ltrank.errors import LtrankError

#: Modes Pillow converts to RGB the way a viewer shows them (no alpha, 8 bits per channel).
_PLAIN = frozenset({"RGB", "RGBX", "L", "1", "P", "CMYK", "YCbCr", "LAB", "HSV"})
#: Modes with an alpha channel (or, for "P", a transparent palette entry), composited over white.
_WITH_ALPHA = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
#: Grey modes holding up to 16 bits per pixel, scaled to 8 bits.
_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


@lru_cache(maxsize=1)
def readable_suffixes() -> frozenset[str]:
    """Lower-case file suffixes (``.png``, ``.tif``, ``.webp`` ...) that Pillow can open here."""
    Image.init()  # registers every format plugin Pillow has
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def to_rgb8(image: Image.Image) -> np.ndarray:
    """``image`` as uint8 [H, W, 3] RGB, as a viewer shows it (module docstring: the rules).

    Raises:
        LtrankError: for a mode with no faithful 8-bit RGB view (``F``, ``I`` beyond 16 bits,
            an unknown mode); the message names the mode and the fix, the caller adds the file.
    """
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode == "P" and "transparency" in image.info:
        mode, image = "RGBA", image.convert("RGBA")
    if mode in _PLAIN:
        return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
    if mode in _WITH_ALPHA:
        if mode == "La":  # premultiplied grey: Pillow reaches RGBA only through LA
            image = image.convert("LA")
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint32)
        color, alpha = rgba[..., :3], rgba[..., 3:]
        over_white = (color * alpha + 255 * (255 - alpha) + 127) // 255
        return np.ascontiguousarray(over_white.astype(np.uint8))
    if mode in _SIXTEEN_BIT:
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise LtrankError(
                f"mode {mode} image with values {int(values.min())}..{int(values.max())}, beyond 16 bits; "
                "save it as an 8- or 16-bit image"
            )
        grey = ((values * 255 + 32767) // 65535).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if mode == "F":
        raise LtrankError(
            "mode F (32-bit float) image: floats have no standard display range; save it as an 8- or 16-bit image"
        )
    raise LtrankError(f"mode {mode} image: ltrank cannot show it as RGB; save it as an 8- or 16-bit RGB or grey image")
