"""Drawing: attribution overlays and colour bars as uint8 RGB arrays (no UI dependency)."""
from __future__ import annotations

import io

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw

#: colour map for magnitude heat maps in [0, 1], and for signed maps in [-1, 1]
MAGNITUDE_CMAP = "inferno"
SIGNED_CMAP = "RdBu_r"


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (C, H, W) in uint8 or float [0, 1] -> (H, W, 3) uint8."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    return a


def colorize(values: np.ndarray, cmap: str = MAGNITUDE_CMAP, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """Map (H, W) values through a matplotlib colour map -> (H, W, 3) uint8."""
    span = max(vmax - vmin, 1e-12)
    t = np.clip((np.asarray(values, dtype=np.float32) - vmin) / span, 0, 1)
    return (colormaps[cmap](t)[..., :3] * 255 + 0.5).astype(np.uint8)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5, cmap: str = MAGNITUDE_CMAP,
            vmin: float = 0.0, vmax: float = 1.0, scale: int = 1) -> np.ndarray:
    """Blend a colour-mapped ``heatmap`` (H, W) over ``image``; optionally upscale by ``scale`` (nearest)."""
    base = to_rgb_uint8(image).astype(np.float32)
    if base.shape[:2] != heatmap.shape:
        raise ValueError(f"image {base.shape[:2]} and heat map {heatmap.shape} differ in size")
    out = ((1 - alpha) * base + alpha * colorize(heatmap, cmap, vmin, vmax)).clip(0, 255).astype(np.uint8)
    return upscale(out, scale)


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    if scale <= 1:
        return image
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def colorbar(cmap: str = MAGNITUDE_CMAP, width: int = 256, height: int = 14, labels: tuple[str, str] = ("low", "high")) -> np.ndarray:
    """A horizontal colour bar with end labels, (height + 14, width, 3) uint8."""
    bar = colorize(np.tile(np.linspace(0, 1, width), (height, 1)), cmap)
    canvas = Image.new("RGB", (width, height + 14), "white")
    canvas.paste(Image.fromarray(bar), (0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.text((1, height + 1), labels[0], fill="black")
    w = draw.textlength(labels[1])
    draw.text((width - w - 1, height + 1), labels[1], fill="black")
    return np.asarray(canvas)


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(to_rgb_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()
