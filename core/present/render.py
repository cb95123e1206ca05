"""Drawing: attribution overlays and colour bars as uint8 RGB arrays (no UI dependency)."""
from __future__ import annotations

import io

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw

from core.explainers.heatmap import robust_scale

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


def resize_map(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A float map (h, w) resized to ``shape`` (H, W) by bilinear interpolation (PIL, 32-bit float mode)."""
    img = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32), mode="F")
    return np.asarray(img.resize((shape[1], shape[0]), Image.BILINEAR), dtype=np.float32)


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An integer label map (segments, masks) resized to ``shape`` by nearest neighbour."""
    img = Image.fromarray(np.ascontiguousarray(labels, dtype=np.int32), mode="I")
    return np.asarray(img.resize((shape[1], shape[0]), Image.NEAREST), dtype=np.int32)


def outline(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (0, 255, 255)) -> np.ndarray:
    """``image`` (any size) with the boundary of a region mask drawn on it (the mask is resized to fit)."""
    from skimage.segmentation import find_boundaries

    rgb = to_rgb_uint8(image).copy()
    m = np.asarray(mask)
    if m.shape != rgb.shape[:2]:
        m = resize_labels(m.astype(np.int32), rgb.shape[:2])
    rgb[find_boundaries(m > 0, mode="inner")] = colour
    return rgb


#: LIME view: superpixels for the class in green, against it in red
SUPPORT_COLOUR, OPPOSE_COLOUR = (44, 160, 44), (214, 39, 40)


def superpixel_view(image: np.ndarray, segments: np.ndarray, weights: dict[int, float], n_show: int,
                    alpha: float = 0.45) -> np.ndarray:
    """The classic LIME picture: the ``n_show`` superpixels with the largest |weight| tinted green (they
    support the class) or red (they oppose it), every superpixel's boundary drawn in yellow."""
    from skimage.segmentation import find_boundaries

    rgb = to_rgb_uint8(image).astype(np.float32)
    seg = np.asarray(segments)
    if seg.shape != rgb.shape[:2]:
        seg = resize_labels(seg, rgb.shape[:2])
    top = sorted(weights.items(), key=lambda kv: -abs(kv[1]))[:n_show]
    for segment, w in top:
        region = seg == int(segment)
        colour = np.array(SUPPORT_COLOUR if w > 0 else OPPOSE_COLOUR, dtype=np.float32)
        rgb[region] = (1 - alpha) * rgb[region] + alpha * colour
    out = rgb.clip(0, 255).astype(np.uint8)
    out[find_boundaries(seg, mode="inner")] = (255, 221, 0)
    return out


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
        image: (H, W[, C]) at any resolution; a map of another size is resized to it (bilinear).
        signed: diverging colour map centred at zero (blue negative, red positive), each pixel's opacity
            proportional to ``|value|`` (zero fully transparent); otherwise the magnitude ``|attribution|``
            on a sequential map at uniform opacity ``alpha``.
        scale: the value shown at full colour; ``None`` = this map's robust maximum (per-map scaling).
            Pass one value for several maps to put them on a shared scale.
        top_percent: show colour only on the most important ``top_percent`` % of pixels (by magnitude);
            the rest shows the plain image.
    """
    a = np.asarray(attribution, dtype=np.float32)
    s = scale if scale is not None else robust_scale(a, outlier_perc)
    s = s if s > 1e-12 else 1.0
    shape = to_rgb_uint8(image).shape[:2]
    if a.shape != shape:  # a map computed at the model's input, shown over the image at its own resolution
        a = resize_map(a, shape)
    if signed:
        # zero is transparent: the opacity grows with |value|, so the image shows through where nothing matters
        colours = colorize(np.clip(a / s, -1, 1), SIGNED_CMAP, -1.0, 1.0)
        weight = alpha * np.clip(np.abs(a) / s, 0, 1).astype(np.float32)
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
