"""Drawing: attribution maps over their image, and colour bars, as uint8 RGB arrays (no UI dependency).

One path draws a map (:func:`draw_map`): a map, its method's declared colour rule and the user's choice give the rule
(:func:`map_view`), and the map is drawn in it over the image shown **in grey, dimmed**: under a map the image's own
hue carries no meaning, and taking it away leaves every colour on the tile to the map (a red "for" can no longer
vanish into a red object), while the image's shapes and edges still show through its brightness. The pages, both
exports, the command line and the API all draw through it, and each says which rule it drew.
"""
from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

from core.explainers.heatmap import robust_scale

#: colour map for magnitude heat maps in [0, 1], and for signed maps in [-1, 1]
MAGNITUDE_CMAP = "inferno"
SIGNED_CMAP = "RdBu_r"

View = Literal["signed", "magnitude"]
#: each colour rule's map, end labels and its meaning in words (the same on screen and in every export)
COLOUR_RULES: dict[str, tuple[str, tuple[str, str], str]] = {
    "signed": (SIGNED_CMAP, ("against the class", "for the class"),
               "red for the class, blue against it, transparent at zero"),
    "magnitude": (MAGNITUDE_CMAP, ("low", "high"), "the brighter, the more important, whatever the sign"),
}


#: the pages' colour choice: each method's own rule, or one rule for every signed map
VIEW_CHOICES = {"Per method": "auto", "Signed": "signed", "Magnitude": "magnitude"}


def map_view(method_view: str, signed_map: bool, choice: str = "auto") -> View:
    """The colour rule of one map: an unsigned map is always magnitude; ``choice`` "auto" takes the method's own
    declared view (magnitude for sparse pixel gradients, signed for LIME and SHAP), else "signed" or "magnitude"."""
    if not signed_map:
        return "magnitude"
    return method_view if choice == "auto" else choice  # type: ignore[return-value]


def colour_rule_text(views: Sequence[str]) -> str:
    """One sentence stating the colour rule of every map shown (``views``: each map's rule)."""
    kinds = [v for v in ("signed", "magnitude") if v in views]
    names = {"signed": "Red-blue maps", "magnitude": "Dark-to-yellow maps"}
    return "; ".join(f"{names[k]}: {COLOUR_RULES[k][2]}" for k in kinds) + ("." if kinds else "")


# --- text in exported images ----------------------------------------------------------------------------------------
#: matplotlib (a dependency) ships DejaVu Sans, which has every character our captions use (→, ·, …, −, ×): Pillow's
#: built-in font lacks them and draws a box
_FONT_FILE = Path(__import__("matplotlib").get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


@functools.lru_cache(maxsize=8)
def font(size: int = 12) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(_FONT_FILE), size)


@functools.lru_cache(maxsize=1)
def _font_chars() -> frozenset[int]:
    from fontTools.ttLib import TTFont

    return frozenset(TTFont(str(_FONT_FILE)).getBestCmap())


def drawable(text: str) -> str:
    """``text`` with any character the export font lacks (e.g. CJK class names) shown as its code (``<U+732B>``)
    rather than as a missing-glyph box."""
    chars = _font_chars()
    return "".join(c if ord(c) in chars or c in "\n\t" else f"<U+{ord(c):04X}>" for c in text)


def wrap(text: str, width: int, size: int = 12) -> list[str]:
    """``text`` broken into lines that fit ``width`` pixels in the export font: at spaces, and inside a word only
    when the word alone is wider than a line. Nothing is dropped: the lines joined are the text."""
    f, out = font(size), []
    for para in drawable(text).split("\n"):
        line = ""
        for word in para.split(" "):
            candidate = f"{line} {word}" if line else word
            if f.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                out.append(line)
            while f.getlength(word) > width and len(word) > 1:  # a word wider than the line: cut it
                k = max(1, next((i for i in range(len(word), 0, -1) if f.getlength(word[:i]) <= width), 1))
                out.append(word[:k])
                word = word[k:]
            line = word
        out.append(line)
    return out


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


def _blend(image: np.ndarray, colours: np.ndarray, weight: float | np.ndarray, scale: int = 1) -> np.ndarray:
    """``image`` and ``colours`` (H, W, 3) mixed by ``weight`` (a number or an (H, W) map), then upscaled."""
    base = to_rgb_uint8(image).astype(np.float32)
    if base.shape[:2] != colours.shape[:2]:
        raise ValueError(f"image {base.shape[:2]} and map {colours.shape[:2]} differ in size")
    w = np.asarray(weight, dtype=np.float32)
    w = w[..., None] if w.ndim == 2 else w
    return upscale(((1 - w) * base + w * colours).clip(0, 255).astype(np.uint8), scale)


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


#: LIME's superpixel view uses the signed maps' colours: the red end of the diverging map for the class, the blue
#: end against it (one colour meaning on every view)
SUPPORT_COLOUR = tuple(int(v * 255 + 0.5) for v in colormaps[SIGNED_CMAP](1.0)[:3])
OPPOSE_COLOUR = tuple(int(v * 255 + 0.5) for v in colormaps[SIGNED_CMAP](0.0)[:3])


def superpixel_view(image: np.ndarray, segments: np.ndarray, weights: dict[int, float], n_show: int,
                    alpha: float = 0.45) -> np.ndarray:
    """The classic LIME picture: the ``n_show`` superpixels with the largest |weight| tinted red (they support the
    class) or blue (they oppose it), as on the signed maps, every superpixel's boundary drawn in yellow; over the
    image's grey :func:`backdrop`, as every map is drawn (a red object must not look like a red superpixel)."""
    from skimage.segmentation import find_boundaries

    rgb = backdrop(image).astype(np.float32)
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


def colorbar(cmap: str = MAGNITUDE_CMAP, width: int = 256, height: int = 14, labels: tuple[str, str] = ("low", "high"),
             size: int = 11) -> np.ndarray:
    """A horizontal colour bar with end labels (drawn at this size: show it at its own width), uint8 RGB."""
    bar = colorize(np.tile(np.linspace(0, 1, width), (height, 1)), cmap)
    canvas = Image.new("RGB", (width, height + size + 4), "white")
    canvas.paste(Image.fromarray(bar), (0, 0))
    draw = ImageDraw.Draw(canvas)
    f = font(size)
    draw.text((1, height + 1), drawable(labels[0]), fill="black", font=f)
    w = draw.textlength(drawable(labels[1]), font=f)
    draw.text((width - w - 1, height + 1), drawable(labels[1]), fill="black", font=f)
    return np.asarray(canvas)


def rule_colorbar(view: str, width: int = 256, height: int = 14, size: int = 11) -> np.ndarray:
    cmap, labels, _ = COLOUR_RULES[view]
    return colorbar(cmap, width, height, labels, size)


def colorbar_svg(view: str, width: int = 320) -> str:
    """A colour rule's bar as SVG (a vector: sharp at any zoom, and scaled to its box by its viewBox), with a text
    alternative (``role="img"``, ``aria-label``) that names it a colour bar and its rule."""
    cmap, (lo, hi), words = COLOUR_RULES[view]
    stops = "".join(f'<stop offset="{t:.2f}" stop-color="rgb{tuple(int(c * 255 + 0.5) for c in colormaps[cmap](t)[:3])}"/>'
                    for t in np.linspace(0, 1, 11))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="34" viewBox="0 0 {width} 34" role="img" '
            f'aria-label="{colorbar_label(view)}"><defs><linearGradient id="g-{view}">{stops}</linearGradient></defs>'
            f'<rect x="0" y="0" width="{width}" height="14" fill="url(#g-{view})"/>'
            f'<text x="0" y="30" font-family="sans-serif" font-size="12">{lo}</text>'
            f'<text x="{width}" y="30" font-family="sans-serif" font-size="12" text-anchor="end">{hi}</text></svg>')


def colorbar_label(view: str) -> str:
    """The text alternative of a rule's colour bar: "Colour bar, signed rule: blue, against the class, to red, ..."."""
    cmap, (lo, hi), words = COLOUR_RULES[view]
    return f"Colour bar, {view} rule: {lo} to {hi} ({words})"


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(to_rgb_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()


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


# --- the one drawing path -----------------------------------------------------------------------------------------

#: a map's backdrop: the image's luminance squeezed into this range of light greys. Measured on red, magenta, blue,
#: green and yellow objects (tests/present/test_drawing.py): with (0.5, 0.9) a pixel the map marks differs from the same
#: object unmarked by at least 26 CIEDE2000 units in every rule (15 with (0.25, 0.75), 11.5 over the colour image)
BACKDROP = (0.5, 0.9)
#: the smallest side a map tile is drawn at: a small model input (28 px) is smoothed up to this, the same
#: interpolation for every method (bilinear for the map and the image)
MIN_TILE = 384


def backdrop(image: np.ndarray) -> np.ndarray:
    """The image as a map's backdrop: its luminance (ITU-R 601) as grey, squeezed into :data:`BACKDROP`."""
    rgb = to_rgb_uint8(image).astype(np.float32) / 255.0
    lum = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    lo, hi = BACKDROP
    grey = lo + (hi - lo) * lum
    return (np.repeat(grey[..., None], 3, axis=-1) * 255 + 0.5).astype(np.uint8)


def tile_side(image_side: int, size: int | None = None) -> int:
    """The side a tile is drawn at: ``size`` if given, else the image's own, at least :data:`MIN_TILE`."""
    return int(size) if size else max(int(image_side), MIN_TILE)


def smooth_resize(image: np.ndarray, side: int) -> np.ndarray:
    """An RGB image resized so that its shorter side is ``side`` (bilinear, antialiased when it shrinks)."""
    rgb = to_rgb_uint8(image)
    h, w = rgb.shape[:2]
    if min(h, w) == side:
        return rgb
    k = side / min(h, w)
    return np.asarray(Image.fromarray(rgb).resize((max(1, round(w * k)), max(1, round(h * k))), Image.BILINEAR))


@dataclass(frozen=True)
class Drawn:
    """One map as drawn: the tile, the colour rule it is in, and the |value| drawn at full colour."""

    image: np.ndarray
    rule: View
    scale: float


def draw_map(image: np.ndarray, attribution: np.ndarray, *, method_view: str = "signed", signed: bool = True,
             choice: str = "auto", alpha: float = 0.6, scale: float | None = None, top_percent: float = 100.0,
             outlier_perc: float = 1.0, size: int | None = None) -> Drawn:
    """The one way a map is drawn.

    Args:
        image: what the map explains, (H, W[, C]) at any resolution (an upload's own crop, or the model's input).
        attribution: the signed map (h, w), at the model's input size; resized to the tile (bilinear).
        method_view, signed, choice: the method's declared rule, whether this map can be negative, and the user's
            choice ("auto": the method's own); see :func:`map_view`.
        alpha: opacity of the map's colours at full value.
        scale: the |value| at full colour; ``None``: this map's robust maximum (its ``100 - outlier_perc``
            percentile); pass one value for several maps to put them on one shared scale.
        top_percent: colour only the most important ``top_percent`` % of pixels.
        size: the tile's shorter side in pixels (default: the image's own, at least :data:`MIN_TILE`).
    """
    rule = map_view(method_view, signed, choice)
    side = tile_side(min(to_rgb_uint8(image).shape[:2]), size)
    base = backdrop(smooth_resize(image, side))
    a = np.asarray(attribution, dtype=np.float32)
    s = scale if scale is not None else robust_scale(a, outlier_perc)
    s = s if s > 1e-12 else 1.0
    if a.shape != base.shape[:2]:
        a = resize_map(a, base.shape[:2])
    if rule == "signed":  # zero is transparent: the opacity grows with |value|
        colours = colorize(np.clip(a / s, -1, 1), SIGNED_CMAP, -1.0, 1.0)
        weight = alpha * np.clip(np.abs(a) / s, 0, 1).astype(np.float32)
    else:
        colours = colorize(np.clip(np.abs(a) / s, 0, 1), MAGNITUDE_CMAP, 0.0, 1.0)
        weight = np.full(a.shape, alpha, dtype=np.float32)
    if top_percent < 100:
        mag = np.abs(a)
        weight[(mag < np.percentile(mag, 100 - top_percent)) | (mag <= 0)] = 0.0
    return Drawn(_blend(base, colours, weight, 1), rule, float(s))


def draw_explanation(image: np.ndarray, e, choice: str = "auto", **kw) -> Drawn:
    """:func:`draw_map` of an :class:`~core.explainers.Explanation`, in its method's declared rule (or ``choice``)."""
    from core.explainers import get_method

    cls = get_method(e.method)
    kw.setdefault("outlier_perc", cls.outlier_perc)
    return draw_map(image, e.attribution, method_view=cls.view, signed=e.signed, choice=choice, **kw)


#: the percentile of |map| a shared scale is set at: one method's outliers do not flatten another's maps
SHARED_PERCENTILE = 99.0


def shared_scales(maps_by_unit: dict[str, Sequence[np.ndarray]]) -> dict[str, float]:
    """One colour scale per unit for maps put side by side: the :data:`SHARED_PERCENTILE` percentile of |value| over
    every map of that unit (a robust range, not the maximum)."""
    out = {}
    for unit, maps in maps_by_unit.items():
        if maps:
            pooled = np.concatenate([np.abs(np.asarray(m, dtype=np.float32)).ravel() for m in maps])
            s = float(np.percentile(pooled, SHARED_PERCENTILE))
            out[unit] = s if s > 1e-12 else float(pooled.max())
    return out
