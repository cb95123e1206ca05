"""MedMNIST files, image folders and downloads, on fixtures generated in the real formats."""
from __future__ import annotations

import http.server
import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import DatasetError, load_dataset
from core.datasets import dataset_status, get_source
from core.datasets.download import download_file, md5sum
from tests.helpers import jpeg_bytes as _jpeg, make_tree, png_bytes as _png, write_npz


@pytest.mark.parametrize("flag,rgb,classes", [("pneumoniamnist", False, 2), ("pathmnist", True, 9)])
@pytest.mark.parametrize("size", [28, 64])
def test_medmnist_file_loads_with_metadata(tmp_path, flag, rgb, classes, size):
    src = get_source(flag)
    write_npz(tmp_path / "medmnist" / src.filename(size), size, rgb, classes=classes)
    ds = load_dataset(flag, split="test", root=tmp_path)  # size found on disk
    assert len(ds) == 6 and ds.info.image_size == size
    assert ds.images.shape == (6, size, size, 3 if rgb else 1)
    x, y = ds[1]
    assert x.shape == (3 if rgb else 1, size, size) and y == 1
    assert len(ds.classes) == classes and ds.classes[0] in ("normal", "adipose")
    # a generated file is not the official one: a warning, not a failure
    assert "differs from the official" in ds.extras["warnings"][0]


def test_medmnist_prefers_64_and_finds_files_in_the_root_itself(tmp_path):
    write_npz(tmp_path / "pneumoniamnist.npz", 28, False)
    write_npz(tmp_path / "medmnist" / "pneumoniamnist_64.npz", 64, False)
    assert load_dataset("pneumoniamnist", root=tmp_path).info.image_size == 64
    assert load_dataset("pneumoniamnist", root=tmp_path, size=28).info.image_size == 28


@pytest.mark.parametrize("override,message", [
    ({"val_images": None}, "lacks val_images"),
    ({"val_images": np.zeros((4, 32, 32), np.uint8)}, r"shape \(4, 32, 32\), expected \(N, 28, 28\)"),
    ({"val_images": np.zeros((4, 28, 28), np.float32)}, "float32, expected uint8"),
    ({"val_labels": np.zeros((3, 1), np.uint8)}, "4 val images but 3 labels"),
    ({"val_labels": np.full((4, 1), 7, np.uint8)}, r"labels range 7..7, expected 0..1"),
    ({"val_labels": np.zeros((4, 2), np.uint8)}, r"labels have shape \(4, 2\)"),
])
def test_malformed_medmnist_files_say_exactly_what_is_wrong(tmp_path, override, message):
    write_npz(tmp_path / "medmnist" / "pneumoniamnist.npz", 28, False, **override)
    with pytest.raises(DatasetError, match=message):
        load_dataset("pneumoniamnist", split="val", root=tmp_path)


def test_missing_and_corrupt_medmnist(tmp_path):
    st = dataset_status("pathmnist", root=tmp_path)
    assert st.state == "needs download" and "pathmnist_64.npz" in st.detail and "zenodo" in st.detail
    with pytest.raises(DatasetError, match="pathmnist_64.npz.*download"):
        load_dataset("pathmnist", root=tmp_path)
    (tmp_path / "medmnist").mkdir()
    (tmp_path / "medmnist" / "pathmnist.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DatasetError, match="not a readable .npz"):
        load_dataset("pathmnist", root=tmp_path)
    with pytest.raises(DatasetError, match="comes in"):
        load_dataset("pathmnist", root=tmp_path, size=32)


# ---------------------------------------------------------------- downloads against a local server
class _Handler(http.server.BaseHTTPRequestHandler):
    payload = b""
    truncate = False

    def do_GET(self):  # noqa: N802
        body = self.payload
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if self.truncate else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_download_progress_checksum_and_interruption(tmp_path, server):
    import hashlib

    payload = np.random.default_rng(0).bytes(3 * (1 << 20) + 123)
    _Handler.payload, _Handler.truncate = payload, False
    url = f"http://127.0.0.1:{server.server_port}/file.npz"
    seen = []
    dest = download_file(url, tmp_path / "d" / "file.npz", hashlib.md5(payload).hexdigest(), lambda d, t: seen.append((d, t)))
    assert dest.read_bytes() == payload and md5sum(dest) == hashlib.md5(payload).hexdigest()
    assert seen[0] == (0, len(payload)) and seen[-1] == (len(payload), len(payload))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) >= 4
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["file.npz"]  # no .part left

    with pytest.raises(DatasetError, match="MD5 .* expected 0+"):
        download_file(url, tmp_path / "bad" / "file.npz", "0" * 32)
    assert not (tmp_path / "bad" / "file.npz").exists() and not list((tmp_path / "bad").iterdir())

    _Handler.truncate = True
    with pytest.raises(DatasetError, match=r"stopped at|Could not download"):
        download_file(url, tmp_path / "cut" / "file.npz", hashlib.md5(payload).hexdigest())
    assert not list((tmp_path / "cut").iterdir())  # an interrupted download leaves nothing to mistake


def test_offline_download_names_file_url_and_folder(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/pneumoniamnist.npz"
    with pytest.raises(DatasetError) as exc:
        download_file(url, tmp_path / "medmnist" / "pneumoniamnist.npz")
    msg = str(exc.value)
    assert "pneumoniamnist.npz" in msg and url in msg and str(tmp_path / "medmnist") in msg and "offline" in msg


def test_medmnist_download_uses_the_official_url_and_md5(tmp_path, monkeypatch):
    calls = {}

    def fake(url, dest, md5=None, progress=None):
        calls.update(url=url, dest=dest, md5=md5)
        write_npz(dest, 64, True, classes=9)
        return dest

    monkeypatch.setattr("core.datasets.medmnist_source.download_file", fake)
    path = get_source("pathmnist").download(tmp_path)
    assert calls["url"].startswith("https://zenodo.org/") and "pathmnist_64.npz" in calls["url"]
    assert calls["md5"] == "55aa9c1e0525abe5a6b9d8343a507616" and path == tmp_path / "medmnist" / "pathmnist_64.npz"
    assert dataset_status("pathmnist", root=tmp_path).ready


# ---------------------------------------------------------------- image folders
def test_class_folder_layout_splits_stratified_and_reports_skips(tmp_path):
    root = make_tree(tmp_path / "pets", split_layout=False)
    parts = {s: load_dataset("folder", split=s, root=root, size=32) for s in ("train", "val", "test")}
    assert parts["train"].classes == ("cats", "dogs")
    total = sum(len(d) for d in parts.values())
    assert total == 6 + 6 + 1 + 3  # cats: 6 + cmyk; dogs: 6 + rgba + sixteen + rotated (corrupt and txt skipped)
    for d in parts.values():
        assert set(d.labels.tolist()) == {0, 1}  # stratified: both classes in every split
    skipped = {Path(p).name for p, _ in parts["train"].extras["skipped"]}
    assert skipped == {"corrupt.jpg", "notes.txt"}
    assert parts["train"].extras["layout"] == "class folders" and parts["train"].extras["split_seed"] == 0
    again = load_dataset("folder", split="test", root=root, size=32)  # deterministic (and from the cache)
    np.testing.assert_array_equal(again.images, parts["test"].images)
    assert parts["train"].images.shape[1:] == (32, 32, 3)
    assert {"CMYK", "RGBA", "RGB", "I;16"} <= set(parts["train"].extras["modes"]) | set(parts["val"].extras["modes"]) | set(parts["test"].extras["modes"])


def test_split_folder_layout_and_awkward_modes(tmp_path):
    root = make_tree(tmp_path / "pets", split_layout=True)
    train = load_dataset("folder", split="train", root=root, size=40)
    assert train.extras["layout"] == "split folders" and len(load_dataset("folder", split="val", root=root, size=40)) == 8
    names = sorted(Path(p).name for p, _ in train.extras["skipped"])
    assert names == ["corrupt.jpg", "notes.txt"]
    assert len(train) == 8 + 4  # 4 + 4 plain, cmyk, rgba, sixteen, rotated


def test_exif_orientation_and_16_bit_conversion():
    from core.datasets.images import open_image, to_array

    stored = Image.new("RGB", (40, 20), (255, 0, 0))
    stored.paste((0, 0, 255), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", exif=exif, quality=95)
    a = to_array(open_image(buf.getvalue()), 20, 3)
    # rotated 90° clockwise: the stored left (blue) half is now on top
    assert a[2, 10, 2] > 200 and a[2, 10, 0] < 60 and a[17, 10, 0] > 200
    sixteen = Image.fromarray(np.full((8, 8), 65535 // 2, dtype=np.uint16))
    assert abs(int(to_array(sixteen, 8, 1)[0, 0, 0]) - 128) <= 1  # scaled, not clipped to 255
    rgba = Image.new("RGBA", (8, 8), (10, 20, 250, 0))
    assert to_array(rgba, 8, 3)[0, 0].tolist() == [10, 20, 250]
    la = Image.new("LA", (8, 8), (77, 0))
    assert to_array(la, 8, 1)[0, 0, 0] == 77 and to_array(la, 8, 3)[0, 0].tolist() == [77, 77, 77]
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 12, 200, 34] + [0] * 762)
    assert to_array(pal, 8, 3)[0, 0].tolist() == [12, 200, 34]
    big = Image.new("RGB", (300, 100), (0, 0, 0))
    big.paste((255, 255, 255), (100, 0, 200, 100))  # white centre third: survives the centre crop
    assert to_array(big, 50, 3)[25, 25].tolist() == [255, 255, 255] and to_array(big, 50, 3).shape == (50, 50, 3)
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red
    r, g, b = to_array(cmyk, 8, 3)[0, 0]
    assert r > 200 and g < 50 and b < 50


def test_folder_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="no class folders"):
        load_dataset("folder", root=tmp_path)
    with pytest.raises(DatasetError, match="needs the path"):
        load_dataset("folder")
    st = dataset_status("dogs_vs_wolves")
    assert st.state == "needs files" and "Kaggle" in st.detail


# ---------------------------------------------------------------- uploads
def test_upload_validation():
    from core import ImageError
    from core.datasets.images import preprocess, read_upload

    img = read_upload(_png(Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8))))
    x, shown = preprocess(img, 64, 1)
    # the model gets 64 px; the display is the same centre crop at the upload's own resolution (200 px)
    assert x.shape == (1, 64, 64) and shown.shape == (200, 200, 1)
    small = np.asarray(Image.fromarray(shown[..., 0]).resize((64, 64), Image.BILINEAR), dtype=np.float32)
    assert np.abs(small - x[0].numpy() * 255).mean() < 2  # the same crop, not another part of the image
    big = read_upload(_png(Image.fromarray(np.tile(np.arange(2000, dtype=np.uint8), (1000, 1)))))
    assert preprocess(big, 28, 3)[1].shape == (512, 512, 3)  # capped for display
    with pytest.raises(ImageError, match="empty"):
        read_upload(b"")
    with pytest.raises(ImageError, match="not an image"):
        read_upload(b"hello world, certainly not a picture")
    with pytest.raises(ImageError, match="cannot be decoded|not an image"):
        read_upload(_jpeg((1, 2, 3))[:80])
    with pytest.raises(ImageError, match="limit is 50 bytes"):
        read_upload(_png(Image.new("L", (10, 10))), max_bytes=50)
    from core.datasets.images import MAX_UPLOAD_BYTES, _size

    assert _size(MAX_UPLOAD_BYTES) == "20 MiB"  # said as it is counted (it once read "21 MB")
    with pytest.raises(ImageError, match="pixel limit"):
        read_upload(_png(Image.new("L", (3000, 3000))), max_pixels=1_000_000)
    gif = io.BytesIO()
    Image.new("P", (8, 8)).save(gif, "GIF")
    with pytest.raises(ImageError, match="GIF images are not accepted"):
        read_upload(gif.getvalue())


def test_cli_download_then_load(tmp_path, server, monkeypatch, capsys):
    import hashlib

    from core.faces.cli import main

    write_npz(tmp_path / "src.npz", 64, False)
    payload = (tmp_path / "src.npz").read_bytes()
    _Handler.payload, _Handler.truncate = payload, False
    url = f"http://127.0.0.1:{server.server_port}/pneumoniamnist_64.npz"
    monkeypatch.setattr("core.datasets.medmnist_source.MedMNISTSource.url_md5",
                        lambda self, size: (url, hashlib.md5(payload).hexdigest()))
    assert main(["download", "pneumoniamnist", "--size", "64", "--data-dir", str(tmp_path / "data")]) == 0
    assert "saved" in capsys.readouterr().out
    assert load_dataset("pneumoniamnist", split="train", root=tmp_path / "data").info.image_size == 64
    assert main(["download", "dogs_vs_wolves"]) == 2  # not downloadable: says where to get it
    assert "Kaggle" in capsys.readouterr().err


def test_medmnist_offers_only_the_sizes_on_disk(tmp_path):
    from core.datasets import get_source

    src = get_source("pneumoniamnist")
    assert src.available_sizes(tmp_path) == ()
    write_npz(tmp_path / "pneumoniamnist_64.npz", 64, rgb=False)
    write_npz(tmp_path / "medmnist" / "pneumoniamnist.npz", 28, rgb=False)
    assert src.available_sizes(tmp_path) == tuple(s for s in src.sizes if s in (28, 64))


@pytest.mark.parametrize("labels,message", [
    (np.array([[0], [np.nan]] * 6, dtype=np.float64), "non-integral"),
    (np.array([[0.0], [0.5]] * 6), "non-integral"),
    (np.array([["a"], ["b"]] * 6), "expected integer class indices"),
])
def test_npz_labels_must_be_whole_class_indices(tmp_path, labels, message):
    from core import DatasetError, load_dataset

    write_npz(tmp_path / "pneumoniamnist.npz", 28, rgb=False, train_labels=labels)
    with pytest.raises(DatasetError, match=message):
        load_dataset("pneumoniamnist", split="train", root=tmp_path, size=28)
    # whole-number floats are fine (some converters write labels as float)
    write_npz(tmp_path / "pneumoniamnist.npz", 28, rgb=False, train_labels=np.array([[0.0], [1.0]] * 6))
    assert load_dataset("pneumoniamnist", split="train", root=tmp_path, size=28).labels.tolist() == [0, 1] * 6


def test_a_file_name_that_is_not_utf8_is_skipped_and_shown(tmp_path):
    """A folder holding a file whose name is not valid UTF-8 crashed the Data page's skipped-files table."""
    import os

    from core import load_dataset

    tree = make_tree(tmp_path / "pets", split_layout=False)
    bad = os.path.join(os.fsencode(tree / "cats"), b"photo\xff.txt")
    with open(bad, "wb") as fh:
        fh.write(b"not an image")
    skipped = [s for split in ("train", "val", "test")
               for s in load_dataset("folder", split=split, root=tree).extras["skipped"]]
    names = [name for name, _ in skipped if "photo" in name]
    assert names and names[0].endswith("photo\\xff.txt")
    for name, reason in skipped:
        name.encode("utf-8"), reason.encode("utf-8")  # displayable: no lone surrogates


def test_silently_wrong_images_are_refused_or_scaled_right():
    """A float TIFF with one +inf pixel became all black; a JPEG with a corrupt body decoded to flat grey and was
    explained with high confidence; an int32 TIFF with negative values was clipped."""
    from core import ImageError
    from core.datasets.images import preprocess, read_upload

    def tiff(a: np.ndarray, mode: str) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(a, mode).save(buf, "TIFF")
        return buf.getvalue()

    ramp = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    with_inf = ramp.copy()
    with_inf[3, 3] = np.inf
    with pytest.raises(ImageError, match="1 non-finite pixels"):
        preprocess(read_upload(tiff(with_inf, "F")), 16, 1)
    # negative int32 values are stretched, not clipped: the darkest and brightest pixels span 0..255
    signed = (np.arange(32 * 32, dtype=np.int32).reshape(32, 32) - 500) * 7
    x, shown = preprocess(read_upload(tiff(signed, "I")), 32, 1)
    assert shown.min() == 0 and shown.max() == 255 and (shown[:8] < 128).all()
    # a corrupt JPEG body that decodes to one flat value (libjpeg's grey fill) is refused, not explained
    flat = _jpeg((128, 128, 128), size=(64, 64))
    with pytest.raises(ImageError, match="one flat value|corrupt or ends early"):
        preprocess(read_upload(flat), 28, 3)


class _Trickle(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(200):  # bounded: at most 200 bytes over about 10 s
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass

    def log_message(self, *args):
        pass


def test_a_trickling_download_stops_with_a_clear_message(tmp_path, monkeypatch):
    """A server sending one byte at a time kept the CLI or a UI session waiting forever with progress at 0."""
    import core.datasets.download as dl

    monkeypatch.setattr(dl, "STALL_WINDOW_S", 0.5)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    dest = tmp_path / "d" / "file.npz"
    dest.parent.mkdir()
    (dest.parent / "file.npz.part").write_bytes(b"left by a killed earlier run")
    try:
        t0 = time.monotonic()
        with pytest.raises(DatasetError, match=r"stalled: \d+ bytes in the last"):
            download_file(f"http://127.0.0.1:{httpd.server_port}/file.npz", dest)
        assert time.monotonic() - t0 < 5
        monkeypatch.setattr(dl, "STALL_WINDOW_S", 60)
        monkeypatch.setattr(dl, "DEADLINE_S", 0.3)
        with pytest.raises(DatasetError, match="took over"):
            download_file(f"http://127.0.0.1:{httpd.server_port}/file.npz", dest)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert not list(dest.parent.iterdir())  # neither the old litter nor a new partial file is left


def test_an_unreadable_class_folder_is_listed_as_skipped(tmp_path, monkeypatch):
    """It used to become a class with 0 images, silently. (The tests run as root, so the permission error is
    simulated where the folder is read.)"""
    from pathlib import Path

    from core import load_dataset

    tree = make_tree(tmp_path / "pets", split_layout=False)
    for i in range(3):
        (tree / "birds").mkdir(exist_ok=True)
        (tree / "birds" / f"b{i}.png").write_bytes(_png(Image.new("RGB", (20, 20), (i, 90, 9))))
    real = Path.iterdir

    def iterdir(self):
        if self.name == "birds":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    ds = load_dataset("folder", split="train", root=tree)
    assert ds.classes == ("cats", "dogs")
    assert any(name.endswith("birds") and "cannot be read" in reason for name, reason in ds.extras["skipped"])


def test_the_registry_reads_medmnists_metadata_without_importing_the_package():
    """``import core`` lists the MedMNIST datasets from medmnist's ``info.py`` alone (the package's ``__init__``
    imports scikit-learn and its dataset classes: about 2 s at every start); a later ``import medmnist`` shares it."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    code = ("import sys, core; loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'medmnist'); "
            "print(loaded, 'pathmnist' in core.list_datasets()); import medmnist; "
            "print(medmnist.INFO is sys.modules['medmnist.info'].INFO)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["['medmnist.info'] True", "True"], out.stdout
