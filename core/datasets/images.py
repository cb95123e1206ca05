"""Reading any image a user has, and turning it into a model input exactly as training data was.

One function, :func:`to_array`, converts every image that enters the system (image-folder datasets
and uploads alike), so an uploaded photo is preprocessed exactly like the training images were.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import ImageError, ImageTooLarge

#: Upload limits (stated in the UI): bytes on the wire and decoded pixels (decompression bombs).
MAX_UPLOAD_MIB = 20
MAX_UPLOAD_BYTES = MAX_UPLOAD_MIB * 2**20  # Streamlit counts its upload limit in MiB too
MAX_PIXELS = 40_000_000
UPLOAD_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP")
UPLOAD_EXTENSIONS = ("png", "jpg", "jpeg", "tif", "tiff", "bmp", "webp")
IMAGE_SUFFIXES = {"." + e for e in UPLOAD_EXTENSIONS} | {".gif", ".ppm", ".pgm"}


def _to_8bit(img: Image.Image) -> Image.Image:
    """High-bit-depth modes (I;16, I, F) to 8-bit L, scaled (never clipped).

    16-bit: by 65535. 32-bit integers: as they are when in 0..255, by 65535 when in 0..65535, else their
    min..max stretched to 0..255 (negative values included). Floats: by 255 when in [0, 1], as they are when
    in [0, 255], else min..max. Non-finite floats (NaN, inf) are refused: one such pixel used to turn the
    whole image black.
    """
    if img.mode not in ("I;16", "I;16B", "I;16L", "I", "F"):
        return img
    a = np.asarray(img, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ImageError(f"the image has {int((~np.isfinite(a)).sum())} non-finite pixels (NaN or inf)")
    lo, hi = float(a.min()), float(a.max())
    if img.mode.startswith("I;16"):
        scaled = a / 65535.0 * 255.0
    elif img.mode == "F" and lo >= 0 and hi <= 1:
        scaled = a * 255.0
    elif lo >= 0 and hi <= 255:
        scaled = a
    elif img.mode == "I" and lo >= 0 and hi <= 65535:
        scaled = a / 65535.0 * 255.0
    else:
        scaled = (a - lo) / max(hi - lo, 1e-12) * 255.0
    return Image.fromarray(np.clip(scaled + 0.5, 0, 255).astype(np.uint8), "L")


def to_array(img: Image.Image, size: int, channels: int, resize: int | None = None,
             interpolation: str = "bilinear") -> np.ndarray:
    """Any PIL image -> uint8 (size, size, channels).

    EXIF orientation is applied; L, LA, RGB, RGBA, P, CMYK, I;16, I and F modes are converted (alpha
    dropped, 16-bit scaled to 8-bit); the shorter side is resized to ``size`` (antialiased bilinear)
    and the centre cropped square. With ``resize`` (pretrained weights' own transform, e.g. 256 then a 224
    crop), torchvision's ``Resize(resize, interpolation)`` and ``CenterCrop(size)`` do it, exactly as the weights'
    ``transforms()``.
    """
    img = ImageOps.exif_transpose(img)
    img = _to_8bit(img)
    if img.mode == "P":
        img = img.convert("RGBA")
    img = img.convert("L" if channels == 1 else "RGB")
    w, h = img.size
    if resize is not None:
        from torchvision.transforms import CenterCrop, InterpolationMode, Resize

        img = CenterCrop(size)(Resize(resize, InterpolationMode(interpolation), antialias=True)(img))
    elif (w, h) != (size, size):
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=3.0)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
    a = np.asarray(img, dtype=np.uint8)
    return a[..., None] if a.ndim == 2 else a


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, C) -> float (C, H, W) in [0, 1]."""
    a = np.ascontiguousarray(array)
    if not a.flags.writeable:  # torch warns on read-only arrays (e.g. PIL's); the float copy below never writes it
        a = a.copy()
    return torch.from_numpy(a).permute(2, 0, 1).float().div_(255.0)


def open_image(source: str | Path | bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open and fully decode an image file or bytes, refusing decompression bombs.

    Raises:
        ImageError: unreadable, not an image, or more than ``max_pixels`` pixels.
    """
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    name = "upload" if isinstance(source, (bytes, bytearray)) else Path(source).name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(fp)
            w, h = img.size
            if w * h > max_pixels:
                raise ImageTooLarge(f"{name}: {w}x{h} = {w * h:,} pixels is over the {max_pixels:,}-pixel limit")
            img.load()
    except ImageError:  # ImageTooLarge included
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"{name}: refused as a decompression bomb ({exc})") from exc
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: cannot be decoded ({exc})") from exc
    if img.format == "JPEG":
        _check_jpeg_fill(img, name)
    return img


#: the value libjpeg writes where a JPEG's data is corrupt or ends early (it warns on stderr, and Pillow says nothing)
JPEG_FILL = 128


def _check_jpeg_fill(img: Image.Image, name: str) -> None:
    """Refuse a JPEG whose bottom rows are all the decoder's grey fill: its data was corrupt or ended early, and the
    picture decodes without an error to mostly flat grey. A photo's bottom 5 % (at least 8 rows) is never exactly
    one mid-grey value in every channel; only the bottom rows are read (a large image is not copied)."""
    w, h = img.size
    rows = min(h, max(8, h // 20))
    if h < 16 or img.mode not in ("L", "RGB", "YCbCr"):
        return
    bottom = np.asarray(img.crop((0, h - rows, w, h)))
    if (bottom == JPEG_FILL).all():
        raise ImageError(f"{name}: the JPEG's data is corrupt or ends early (its bottom rows decode to the decoder's "
                         "flat grey fill); export or download the file again")


def _size(n: int) -> str:
    return f"{n:,} bytes" if n < 2**20 else f"{n / 2**20:.1f} MiB".replace(".0 MiB", " MiB")


def read_upload(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Validate an uploaded file: size, format (PNG, JPEG, TIFF, BMP, WebP) and pixel count."""
    if len(data) == 0:
        raise ImageError("the file is empty")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the file is {_size(len(data))}; the limit is {_size(max_bytes)}")
    img = open_image(data, max_pixels)
    if img.format not in UPLOAD_FORMATS:
        raise ImageError(f"{img.format or 'unknown'} images are not accepted; use {', '.join(UPLOAD_FORMATS)}")
    return img


#: longest side of an upload's display crop (maps are shown upsampled over it)
DISPLAY_MAX = 512


def preprocess(img: Image.Image, size: int, channels: int, resize: int | None = None,
               interpolation: str = "bilinear") -> tuple[torch.Tensor, np.ndarray]:
    """An image -> (model input (C, H, W) in [0, 1], display array uint8 (H, W, C)).

    The display array is the same centre crop as the model's input, at the image's own resolution (up to
    :data:`DISPLAY_MAX` px a side; never below the model's size), so a map is shown over what was uploaded.
    ``resize``/``interpolation``: see :func:`to_array` (a model card's ``resize_size`` and ``interpolation``).
    """
    a = to_array(img, size, channels, resize, interpolation)
    if a.min() == a.max():  # e.g. a JPEG whose corrupt body decodes to flat grey without an error
        raise ImageError(f"the image is one flat value ({int(a.min())}) after conversion: nothing to explain "
                         "(a corrupt file decodes like this)")
    crop = min(ImageOps.exif_transpose(img).size) * size / (resize or size)  # the crop's side in the image's pixels
    side = max(size, min(int(crop), DISPLAY_MAX))
    if side == size:
        return to_tensor(a), a
    return to_tensor(a), to_array(img, side, channels, None if resize is None else round(resize * side / size),
                                  interpolation)


def preprocess_for(img: Image.Image, card: Any) -> tuple[torch.Tensor, np.ndarray]:
    """:func:`preprocess` as a model card says (its size, channels, and the weights' resize and interpolation)."""
    return preprocess(img, card.input_size, card.channels, card.resize_size or None, card.interpolation)
