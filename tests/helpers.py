"""Helpers shared by the tests (fixtures live in conftest.py): paths, hand-built models, files in real formats,
and AppTest waiting. Tests import from here, never from each other."""
from __future__ import annotations

import contextlib
import io
import re
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest
from torch import nn

ROOT = Path(__file__).resolve().parents[1]

SHARED_DATA = ROOT.parent / "shared" / "data"

APP = str(ROOT / "streamlit_app.py")

WAIT_LIMIT = 240  # seconds any background training below may take


def real_images(*folders: str) -> list[Path]:
    """The shared real photographs / X-rays under ``../shared/data/samples`` (skips the test when absent)."""
    files = sorted(p for f in folders for p in (SHARED_DATA / "samples" / f).rglob("*") if p.suffix in (".jpg", ".png"))
    if not files:
        pytest.skip(f"real sample images not found under {SHARED_DATA / 'samples'}")
    return files


def make_classifier(in_channels: int, num_classes: int = 3, seed: int = 0):
    """A random-init small_cnn wrapped as a Classifier (what every method must handle)."""
    from core.modelling.architectures import build_model

    torch.manual_seed(seed)
    model = build_model("small_cnn", num_classes, in_channels, [0.5] * in_channels, [0.25] * in_channels)
    return model.eval()


def make_vit(in_channels: int = 3, num_classes: int = 3, seed: int = 0, size: int = 32):
    """A tiny Vision Transformer built by hand (torchvision's class: 8 px patches, 2 layers, 2 heads, width 16) with a
    random head (torchvision starts it at zero, which makes every class score constant), wrapped as a Classifier
    with its traits found from its modules, as for any model built outside our registry."""
    from torchvision.models.vision_transformer import VisionTransformer

    from core.modelling.architectures import Classifier

    torch.manual_seed(seed)
    net = VisionTransformer(image_size=size, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
                            num_classes=num_classes)
    if in_channels != 3:
        net.conv_proj = nn.Conv2d(in_channels, 16, 8, 8)
    nn.init.normal_(net.heads.head.weight, std=0.5)
    return Classifier(net, [0.5] * in_channels, [0.25] * in_channels, "net.encoder.layers.encoder_layer_1.ln_1").eval()


def refused(model: nn.Module, method: str, image=None) -> bool:
    """Whether ``method`` does not apply to ``model``; if so, asserts the library refuses it with the reason the
    method declares (tests generated over every method call this first, then test the method where it applies)."""
    from core import NotApplicableError, explain, get_method

    why = get_method(method).unavailable(model)
    if why is None:
        return False
    size = 32
    x = image if image is not None else torch.rand(int(model.normalize.mean.shape[1]), size, size)
    with pytest.raises(NotApplicableError, match=re.escape(why[:40])):
        explain(model, x, method)
    return True


def hooks_on(model: nn.Module) -> int:
    """Number of forward/backward hooks registered on any module of ``model``."""
    from core.modelling.sharing import hook_count

    return hook_count(model)


class Linear(nn.Module):
    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.lin = nn.Linear(w[0].numel(), w.shape[0], bias=True)
        self.lin.weight.data = w.flatten(1).clone()

    def forward(self, x):
        return self.lin(x.flatten(1))


# ---------------------------------------------------------------- MedMNIST .npz fixtures
def write_npz(path: Path, size: int, rgb: bool, n=(12, 4, 6), classes: int = 2, **override) -> Path:
    rng = np.random.default_rng(size)
    arrays = {}
    for split, k in zip(("train", "val", "test"), n):
        shape = (k, size, size, 3) if rgb else (k, size, size)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(k) % classes).reshape(-1, 1).astype(np.uint8)
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def jpeg_bytes(color, size=(40, 30), mode="RGB", **kw) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "JPEG", **kw)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def make_tree(root: Path, split_layout: bool) -> Path:
    """Two classes with every awkward file a user's folder has."""
    def put(rel: str, data: bytes):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    splits = ["train", "val", "test"] if split_layout else [""]
    for split in splits:
        pre = f"{split}/" if split else ""
        for i in range(4 if split_layout else 6):
            put(f"{pre}cats/c{i}.jpg", jpeg_bytes((200, 40 + i, 40)))
            put(f"{pre}dogs/d{i}.png", png_bytes(Image.new("RGB", (30, 50), (40, 40, 200 - i))))
    pre = "train/" if split_layout else ""
    put(f"{pre}cats/corrupt.jpg", jpeg_bytes((1, 2, 3))[:60])
    put(f"{pre}cats/notes.txt", b"not an image")
    put(f"{pre}cats/cmyk.jpg", jpeg_bytes((0, 255, 255, 0), mode="CMYK"))
    put(f"{pre}dogs/rgba.png", png_bytes(Image.new("RGBA", (20, 20), (10, 20, 250, 128))))
    sixteen = Image.fromarray(np.full((16, 16), 40000, dtype=np.uint16))
    put(f"{pre}dogs/sixteen.png", png_bytes(sixteen))
    # EXIF orientation 6 (rotate 90° clockwise to display): stored 40 wide x 20 high, shown 20 x 40
    stored = Image.new("RGB", (40, 20), (255, 0, 0))
    stored.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue when stored
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", exif=exif, quality=95)
    put(f"{pre}dogs/rotated.jpg", buf.getvalue())
    return root


def rerun_until(at: AppTest, done) -> None:
    """Rerun (what the page's one-second fragment does in a browser) until ``done(at)``, bounded in time."""
    deadline = time.time() + WAIT_LIMIT
    while time.time() < deadline:
        at.run()
        assert not at.exception, at.exception
        if done(at):
            return
        time.sleep(0.5)
    raise AssertionError(f"the background job did not reach the expected state in {WAIT_LIMIT} s")


def fake_weights(arch: str, seed: int = 0) -> dict:
    """A random state dict of torchvision's ``arch`` saved where torchvision caches the real file (set TORCH_HOME
    first): the right shapes, not the published tensors."""
    import torch

    from core.modelling import pretrained
    from core.modelling.architectures import build_model

    torch.manual_seed(seed)
    net = build_model(arch, 1000, 3, pretrained.IMAGENET_MEAN, pretrained.IMAGENET_STD).net
    for m in net.modules():  # torchvision starts ViT's head at zero: every class would score the same
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=0.02)
    state = net.state_dict()
    path = pretrained.cache_path(arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


# --- the REST API's tests -----------------------------------------------------------------------------------------

def expect_error(r, code: int, *fragments: str) -> dict:
    """An API answer that is the error ``code`` with the library's message (JSON ``{detail, error}``, no traceback)
    holding every fragment."""
    assert r.status_code == code, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"detail", "error"} and "Traceback" not in r.text
    for f in fragments:
        assert f in body["detail"], (f, body)
    return body


@contextlib.contextmanager
def api_clients(monkeypatch, unset=("XAI_API_TOKEN",)):
    """``make(**env)``: a started TestClient of an app created with these environment settings (``unset`` cleared
    first); every client is closed after."""
    from fastapi.testclient import TestClient

    from core.faces.api import create_app

    for name in unset:
        monkeypatch.delenv(name, raising=False)
    clients = []

    def make(**env):
        for k, v in env.items():
            monkeypatch.setenv(k, str(v))
        c = TestClient(create_app())
        c.__enter__()
        clients.append(c)
        return c

    try:
        yield make
    finally:
        for c in clients:
            c.__exit__(None, None, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dataset_png(model_id: str, index: int = 3) -> bytes:
    """A test image of the model's dataset, as a user would upload it (PNG)."""
    import core

    _, card = core.load_model(model_id)
    ds = core.load_dataset(card.dataset, "test", card.input_size)
    buf = io.BytesIO()
    Image.fromarray(ds.image(index)).save(buf, format="PNG")
    return buf.getvalue()
