"""Drawing: attribution overlays and colour bars as uint8 RGB arrays (no UI dependency)."""
from __future__ import annotations

import io

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw

from .maps import robust_scale

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


def _blend(image: np.ndarray, colours: np.ndarray, weight: float | np.ndarray, scale: int) -> np.ndarray:
    """``image`` and ``colours`` (H, W, 3) mixed by ``weight`` (a number or an (H, W) map), then upscaled."""
    base = to_rgb_uint8(image).astype(np.float32)
    if base.shape[:2] != colours.shape[:2]:
        raise ValueError(f"image {base.shape[:2]} and map {colours.shape[:2]} differ in size")
    w = np.asarray(weight, dtype=np.float32)
    w = w[..., None] if w.ndim == 2 else w
    return upscale(((1 - w) * base + w * colours).clip(0, 255).astype(np.uint8), scale)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5, cmap: str = MAGNITUDE_CMAP,
            vmin: float = 0.0, vmax: float = 1.0, scale: int = 1) -> np.ndarray:
    """Blend a colour-mapped ``heatmap`` (H, W) over ``image``; optionally upscale by ``scale`` (nearest)."""
    return _blend(image, colorize(heatmap, cmap, vmin, vmax), alpha, scale)


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


def attribution_overlay(image: np.ndarray, attribution: np.ndarray, *, signed: bool = False, scale: float | None = None,
                        alpha: float = 0.5, top_percent: float = 100.0, outlier_perc: float = 1.0,
                        upscale_by: int = 1) -> np.ndarray:
    """Overlay of a signed attribution map for comparison views.

    Args:
        signed: diverging colour map centred at zero (blue negative, red positive); otherwise the
            magnitude ``|attribution|`` on a sequential map.
        scale: the value shown at full colour; ``None`` = this map's robust maximum (per-map scaling).
            Pass one value for several maps to put them on a shared scale.
        top_percent: show colour only on the most important ``top_percent`` % of pixels (by magnitude);
            the rest shows the plain image.
    """
    a = np.asarray(attribution, dtype=np.float32)
    s = scale if scale is not None else robust_scale(a, outlier_perc)
    s = s if s > 1e-12 else 1.0
    if signed:
        colours = colorize(np.clip(a / s, -1, 1), SIGNED_CMAP, -1.0, 1.0)
    else:
        colours = colorize(np.clip(np.abs(a) / s, 0, 1), MAGNITUDE_CMAP, 0.0, 1.0)
    weight = np.full(a.shape, alpha, dtype=np.float32)
    if top_percent < 100:
        mag = np.abs(a)
        threshold = np.percentile(mag, 100 - top_percent)
        weight[mag < threshold] = 0.0
        weight[mag <= 0] = 0.0
    return _blend(image, colours, weight, upscale_by)


def grid_image(rows: list[list[np.ndarray]], row_labels: list[str], col_labels: list[str], pad: int = 4) -> np.ndarray:
    """Tile equally sized RGB images into one labelled grid (for the PNG download)."""
    h, w = rows[0][0].shape[:2]
    top, left = 16, 0
    ncols = max(len(r) for r in rows)
    canvas = Image.new("RGB", (left + ncols * (w + pad) + pad, top + len(rows) * (h + 14 + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for j, label in enumerate(col_labels[:ncols]):
        draw.text((left + pad + j * (w + pad), 2), label[: max(4, w // 6)], fill="black")
    for i, row in enumerate(rows):
        y = top + i * (h + 14 + pad)
        for j, tile in enumerate(row):
            canvas.paste(Image.fromarray(to_rgb_uint8(tile)), (left + pad + j * (w + pad), y))
        draw.text((left + pad, y + h + 1), row_labels[i][: max(8, (w + pad) * ncols // 6)], fill="black")
    return np.asarray(canvas)
