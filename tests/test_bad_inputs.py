"""The project's own bad-input suite (issue 9): a corpus built here (no binary blobs committed), each case run
through every entry point that accepts it, each asserting its outcome class: a precise error naming the input
and what to do (an ``XaiError`` from the library, exit code 2 with one ``error:`` line from the CLI, one error
line in the page from ``AppTest``), or a correct result. No traceback, nothing written outside the project's
folders. Generated from the registries where there is one (every method's every bounded parameter).

Outcome counts: ``pytest tests/test_bad_inputs.py -q`` (each test id is one input x entry point).
"""
from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import (CheckpointError, DatasetError, ImageError, ParameterError, XaiError, explain, get_method,
                  list_methods, load_dataset, load_model)
from core.faces.cli import main
from core.datasets.images import preprocess, read_upload
from tests.helpers import make_classifier

# ------------------------------------------------------------------------------------------------ images
def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _noise(mode: str = "RGB", size=(48, 40)) -> Image.Image:
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    return Image.fromarray(np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)).convert(mode)


def _bomb_png() -> bytes:
    """A valid PNG header claiming 60,000 x 60,000 pixels (3.6 Gpx), with a tiny body."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))


def _float_tiff(a: np.ndarray) -> bytes:
    return _encode(Image.fromarray(a.astype(np.float32), "F"), "TIFF")


_ramp = np.linspace(0, 1, 40 * 48).reshape(40, 48)
_inf = _ramp.copy()
_inf[5, 5] = np.inf
_nan = _ramp.copy()
_nan[0, 0] = np.nan
_gif = _encode(Image.new("P", (8, 8)), "GIF")


def _photo_jpeg() -> bytes:
    """A photo-like JPEG (smooth gradients and noise) of 96 x 64."""
    yy, xx = np.mgrid[0:64, 0:96]
    rgb = np.stack([xx * 2.5, yy * 3.5, (xx + yy) * 1.5], -1) + np.random.default_rng(3).normal(0, 12, (64, 96, 3))
    return _encode(Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)), "JPEG", quality=90)


def _corrupt_body(jpeg: bytes) -> bytes:
    """The entropy-coded data after the first rows overwritten with 0xFF: libjpeg decodes it to flat grey, warns
    on stderr, and Pillow reports nothing."""
    start = jpeg.find(b"\xff\xda") + 40
    return jpeg[:start] + b"\xff" * (len(jpeg) - start - 2) + jpeg[-2:]


def _cut_short(jpeg: bytes) -> bytes:
    """Half of the entropy-coded data, then an end-of-image marker (an interrupted download)."""
    sos = jpeg.find(b"\xff\xda")
    return jpeg[: sos + (len(jpeg) - sos) // 2] + b"\xff\xd9"

#: name -> (bytes, None for a correct result, or a regex of the precise message)
IMAGES: dict[str, tuple[bytes, str | None]] = {
    "empty file": (b"", "empty"),
    "text file": (b"hello, certainly not a picture", "not an image"),
    "truncated JPEG": (_encode(_noise(), "JPEG")[:200], "cannot be decoded|not an image"),
    "truncated PNG": (_encode(_noise(), "PNG")[:300], "cannot be decoded|not an image"),
    "decompression bomb": (_bomb_png(), "pixel limit|decompression bomb"),
    "GIF (not accepted)": (_gif, "GIF images are not accepted"),
    "one flat colour": (_encode(Image.new("RGB", (40, 30), (90, 90, 90)), "PNG"), "one flat value"),
    "float TIFF with inf": (_float_tiff(_inf), "non-finite"),
    "float TIFF with NaN": (_float_tiff(_nan), "non-finite"),
    "float TIFF in [0, 1]": (_float_tiff(_ramp), None),
    "int32 TIFF with negatives": (_encode(Image.fromarray((np.arange(40 * 48).reshape(40, 48) - 900).astype(np.int32), "I"), "TIFF"), None),
    "16-bit PNG": (_encode(Image.fromarray((np.arange(40 * 48).reshape(40, 48) * 30).astype(np.uint16)), "PNG"), None),
    "CMYK JPEG": (_encode(_noise().convert("CMYK"), "JPEG"), None),
    "JPEG with a corrupt body": (_corrupt_body(_photo_jpeg()), "corrupt or ends early"),
    "JPEG cut short, end marker added": (_cut_short(_photo_jpeg()), "corrupt or ends early"),
    "photo-like JPEG": (_photo_jpeg(), None),
    "RGBA PNG": (_encode(_noise().convert("RGBA"), "PNG"), None),
    "palette PNG": (_encode(_noise().convert("P"), "PNG"), None),
    "grey PNG": (_encode(_noise("L"), "PNG"), None),
    "1 x 5000 strip": (_encode(Image.fromarray(np.random.default_rng(2).integers(0, 256, (1, 5000), dtype=np.uint8)), "PNG"), None),
}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", IMAGES)
def test_image_through_the_library(name, channels):
    data, message = IMAGES[name]
    if message is None:
        x, shown = preprocess(read_upload(data), 32, channels)
        assert x.shape == (channels, 32, 32) and 0 <= float(x.min()) <= float(x.max()) <= 1 and float(x.max()) > 0
        assert shown.dtype == np.uint8
    else:
        with pytest.raises(ImageError, match=message):
            preprocess(read_upload(data), 32, channels)


def test_an_int32_tiff_with_negatives_is_stretched_not_clipped(tmp_path):
    """Values from -900 to 1019: the 8-bit image is their min..max stretch, so one pixel is 0 and the order is
    kept, through the library, the display array and a folder dataset alike."""
    ramp = (np.arange(40 * 48).reshape(40, 48) - 900).astype(np.int32)
    data = IMAGES["int32 TIFF with negatives"][0]
    expected = np.clip((ramp - ramp.min()) / np.ptp(ramp) * 255 + 0.5, 0, 255).astype(np.uint8)
    x, shown = preprocess(read_upload(data), 48, 1)
    assert shown.shape[:2] == (40, 40) or shown.shape[:2] == (48, 48)
    from core.datasets.images import to_array

    a = to_array(read_upload(data), 40, 1)[..., 0]
    assert int((a == 0).sum()) <= 2 and np.all(np.diff(a.astype(int), axis=1) >= -1)  # not clipped: still a ramp
    np.testing.assert_allclose(a.astype(int), expected[:, 4:44], atol=2)
    for cls in ("low", "high"):
        (tmp_path / "ints" / cls).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "ints" / cls / f"{i}.tif").write_bytes(data)
    ds = load_dataset("folder", split="train", root=tmp_path / "ints", size=40)
    assert int((ds.images[0, ..., 0] == 0).sum()) <= 2


# ------------------------------------------------------------------------------------------------ model cards
def _card_cases() -> dict[str, tuple[object, str]]:
    """mutation of a saved model folder -> the precise message it must give."""
    def field(name, value):
        return lambda d: {**d, name: value}

    def drop(name):
        return lambda d: {k: v for k, v in d.items() if k != name}

    return {
        "card not JSON": ("{broken", "not valid JSON"),
        "card a list": ("[1, 2]", "not a JSON object"),
        "card without arch": (drop("arch"), "lacks arch"),
        "card without classes": (drop("classes"), "lacks classes"),
        "channels 2": (field("channels", 2), "'channels' must be 1 or 3"),
        "channels text": (field("channels", "3"), "'channels' must be 1 or 3"),
        "mean too short": (field("mean", [0.5]), "'mean' must be 3 finite"),
        "std zero": (field("std", [0.25, 0.0, 0.25]), "'std' must be 3 positive"),
        "std NaN": (field("std", [0.25, float("nan"), 0.25]), "'std' must be 3 positive"),
        "input size 0": (field("input_size", 0), "'input_size' must be"),
        "input size negative": (field("input_size", -3), "'input_size' must be"),
        "input size text": (field("input_size", "64"), "'input_size' must be"),
        "classes a string": (field("classes", "circle,square"), "'classes' must be a list"),
        "one class": (field("classes", ["circle"]), "'classes' must be a list"),
        "unknown architecture": (field("arch", "vgg99"), "Unknown architecture 'vgg99'"),
        "classes do not fit the weights": (field("classes", ["a", "b"]), "does not fit architecture"),
        "weights replaced": ("weights:garbage", "does not match the SHA-256"),
        "weights missing": ("weights:missing", "weights.pt"),
    }


CARDS = _card_cases()


@pytest.fixture
def broken_model(tmp_path, request):
    """A copy of a saved model with one defect applied; returns its folder."""
    from core import ModelCard, save_model

    model = make_classifier(3, 4)
    card = ModelCard(id="m", dataset="shapes", arch="small_cnn", classes=["circle", "square", "triangle", "cross"],
                     input_size=32, channels=3, mean=[0.5] * 3, std=[0.25] * 3, target_layer=model.target_layer)
    path = save_model(model, card, tmp_path / "models")
    mutation, _ = CARDS[request.param]
    card_file = path / "card.json"
    if mutation == "weights:garbage":
        (path / "weights.pt").write_bytes(b"garbage")
    elif mutation == "weights:missing":
        (path / "weights.pt").unlink()
    elif isinstance(mutation, str):
        card_file.write_text(mutation)
    else:
        card_file.write_text(json.dumps(mutation(json.loads(card_file.read_text()))))
    return path


@pytest.mark.parametrize("broken_model", CARDS, indirect=True)
def test_card_through_the_library(broken_model, request):
    message = CARDS[request.node.callspec.params["broken_model"]][1]
    with pytest.raises(CheckpointError, match=message):
        load_model(broken_model)


@pytest.mark.parametrize("broken_model", CARDS, indirect=True)
def test_card_through_cli_explain(broken_model, request, capsys, tmp_path):
    message = CARDS[request.node.callspec.params["broken_model"]][1]
    assert main(["explain", "--model", str(broken_model), "--methods", "saliency", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "o").exists()  # refused before anything is written


@pytest.mark.parametrize("broken_model", CARDS, indirect=True)
def test_card_through_cli_list(broken_model, request, capsys):
    assert main(["--models-dir", str(broken_model.parent), "list"]) == 0
    out = capsys.readouterr().out
    shown = f"{broken_model}  BROKEN: " in out
    unknown_arch = request.node.callspec.params["broken_model"] in ("unknown architecture", "classes do not fit the weights")
    # a card that reads fine but names what cannot be built is listed as a model and fails, precisely, on load
    assert shown or unknown_arch, out


# ------------------------------------------------------------------------------------------------ npz files
def _npz(tmp_path: Path, **override) -> Path:
    from tests.helpers import write_npz

    return write_npz(tmp_path / "pneumoniamnist.npz", 28, rgb=False, n=(12, 4, 6), **override)


NPZ: dict[str, tuple[dict, str]] = {
    "NaN labels": ({"train_labels": np.array([[0], [np.nan]] * 6)}, "non-integral"),
    "fractional labels": ({"train_labels": np.array([[0.5], [1.0]] * 6)}, "non-integral"),
    "string labels": ({"train_labels": np.array([["a"], ["b"]] * 6)}, "integer class indices"),
    "label out of range": ({"train_labels": np.array([[0], [7]] * 6)}, "labels range"),
    "negative label": ({"train_labels": np.array([[0], [-1]] * 6)}, "labels range"),
    "labels wrong shape": ({"train_labels": np.zeros((12, 2), np.uint8)}, "expected \\(N, 1\\)"),
    "fewer labels than images": ({"train_labels": np.zeros((5, 1), np.uint8)}, "12 train images but 5 labels"),
    "missing labels key": ({"train_labels": None}, "train_labels"),
    "float images": ({"train_images": np.random.default_rng(0).random((12, 28, 28))}, "uint8|dtype"),
}


@pytest.mark.parametrize("name", NPZ)
def test_npz_through_the_library(name, tmp_path):
    override, message = NPZ[name]
    _npz(tmp_path, **override)
    with pytest.raises(DatasetError, match=message):
        load_dataset("pneumoniamnist", split="train", root=tmp_path, size=28)


@pytest.mark.parametrize("name", NPZ)
def test_npz_through_cli_train(name, tmp_path, capsys):
    import re

    override, message = NPZ[name]
    _npz(tmp_path, **override)
    rc = main(["--models-dir", str(tmp_path / "models"), "train", "--dataset", "pneumoniamnist", "--data-dir",
               str(tmp_path), "--size", "28", "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and re.search(message, err) and "Traceback" not in err
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


# ------------------------------------------------------------------------------------------------ folders
def _folder_cases(root: Path) -> dict[str, tuple[Path, str | None]]:
    def write(rel: str, data: bytes) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    ok = _encode(_noise(), "PNG")
    (root / "empty").mkdir(parents=True)
    write("one_class/cats/a.png", ok)
    write("only_junk/cats/a.txt", b"x")
    write("only_junk/dogs/b.txt", b"y")
    write("files_only/a.png", ok)
    for i in range(4):
        write(f"good/cats/c{i}.png", ok)
        write(f"good/dogs/d{i}.png", _encode(_noise("L"), "PNG"))
    loop = root / "loop" / "cats"
    loop.mkdir(parents=True)
    (loop / "again").symlink_to(root / "loop")
    for i in range(3):
        write(f"loop/cats/c{i}.png", ok)
        write(f"loop/dogs/d{i}.png", ok)
    for name in ("cats", "dogs"):
        for i in range(3):
            write(f"linked_back/{name}/{name[0]}{i}.png", ok if name == "cats" else _encode(_noise("L"), "PNG"))
    (root / "linked_back" / "birds").symlink_to(root / "linked_back")  # a class that is the dataset folder itself
    (root / "linked_back" / "kittens").symlink_to(root / "linked_back" / "cats")  # a copy of another class
    write("outside/secret/s.png", ok)
    (root / "linked_back" / "dogs" / "away.png").symlink_to(root / "outside" / "secret" / "s.png")
    (root / "linked_back" / "fish").symlink_to(root / "outside")  # a class outside the dataset folder
    return {
        "class folders linked back, to a sibling and outside": (root / "linked_back", None),
        "missing folder": (root / "nope", "not a folder|does not exist|no such"),
        "empty folder": (root / "empty", "no class folders"),
        "files but no class folders": (root / "files_only", "no class folders"),
        "one class": (root / "one_class", "one class folder"),
        "nothing readable": (root / "only_junk", "no readable images"),
        "symlink loop inside": (root / "loop", None),
        "two good classes": (root / "good", None),
    }


@pytest.mark.parametrize("name", ["missing folder", "empty folder", "files but no class folders", "one class",
                                  "nothing readable", "symlink loop inside", "two good classes",
                                  "class folders linked back, to a sibling and outside"])
def test_folder_through_the_library(name, tmp_path):
    folder, message = _folder_cases(tmp_path)[name]
    if message is None:
        ds = load_dataset("folder", split="train", root=folder, size=16)
        assert len(ds) > 0 and len(ds.classes) == 2
    else:
        with pytest.raises(DatasetError, match=message):
            load_dataset("folder", split="train", root=folder, size=16)


# ------------------------------------------------------------------------------------------------ parameters
def _out_of_range() -> list[tuple[str, str, object]]:
    """Every bounded parameter of every registered method, just below its minimum and just above its maximum,
    and every choice parameter with a value it does not offer."""
    cases = []
    for m in list_methods():
        for p in get_method(m).params:
            if p.kind in ("int", "float") and p.min is not None:
                step = 1 if p.kind == "int" else max(abs(p.min) * 0.5, 0.01)
                cases.append((m, p.name, p.min - step))
                cases.append((m, p.name, p.max + (1 if p.kind == "int" else max(abs(p.max) * 0.5, 0.01))))
            elif p.kind == "choice":
                cases.append((m, p.name, "no-such-choice"))
            elif p.kind == "layer":
                cases.append((m, p.name, "net.no_such_layer"))
    return cases


PARAMS = _out_of_range()
MODEL = make_classifier(3, 3)
IMAGE = np.random.default_rng(3).random((3, 32, 32)).astype(np.float32)


@pytest.mark.parametrize("method,name,value", PARAMS, ids=[f"{m}.{n}={v}" for m, n, v in PARAMS])
def test_parameter_through_the_library(method, name, value):
    with pytest.raises(XaiError, match=f"{name}|layer"):
        explain(MODEL, IMAGE, method, **{name: value})


@pytest.mark.parametrize("method,name,value", PARAMS[::3], ids=[f"{m}.{n}={v}" for m, n, v in PARAMS[::3]])
def test_parameter_through_the_cli(method, name, value, tiny_model_dir, tmp_path, capsys):
    rc = main(["explain", "--model", str(tiny_model_dir), "--methods", method, "--param", f"{method}.{name}={value}",
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "Traceback" not in err
    assert not list((tmp_path / "o").glob("*.npy")) if (tmp_path / "o").exists() else True


def test_a_method_parameter_of_the_wrong_type_is_precise():
    for value in ("many", None, [1], float("nan")):
        with pytest.raises(ParameterError, match="n_steps"):
            explain(MODEL, IMAGE, "integrated_gradients", n_steps=value)


@pytest.mark.parametrize("name", IMAGES)
def test_image_through_the_explain_page(name, tiny_model_dir):
    """The same corpus uploaded on the Explain page: one line naming the file, or the maps; never a traceback."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.helpers import APP

    st.cache_data.clear()
    st.cache_resource.clear()
    data, message = IMAGES[name]
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/explain.py").run()
    at.radio(key="image_source").set_value("Upload").run()
    at.file_uploader(key="upload").set_value(("upload.png", data, "image/png")).run()
    assert not at.exception
    maps = [im for im in at.get("image") if im.proto.imgs and im.proto.imgs[0].caption.startswith("Grad-CAM →")]
    if message is None:
        assert not at.error and len(maps) == 1
    else:
        import re

        assert len(at.error) == 1 and at.error[0].value.startswith("upload.png: ") and not maps
        assert re.search(message, at.error[0].value), at.error[0].value


# ------------------------------------------------------------------------------------------------ the pages
def _app():
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from core import settings
    from tests.helpers import APP

    st.cache_data.clear()
    st.cache_resource.clear()
    settings.settings_path().unlink(missing_ok=True)
    return AppTest.from_file(APP, default_timeout=120).run()


def _data_page_with_folder(dataset: str, folder: Path):
    """The Data page after the user typed ``folder`` for ``dataset`` and pressed "Use this folder"."""
    at = _app()
    at.switch_page("pages/data.py").run()
    at.selectbox(key="data_dataset").set_value(dataset).run()
    at.text_input(key="data_path").set_value(str(folder))
    at.button(key="FormSubmitter:data_path_form-Use this folder").click().run()
    assert not at.exception
    return at


@pytest.mark.parametrize("broken_model", CARDS, indirect=True)
def test_card_through_the_explain_page(broken_model, request, monkeypatch):
    """A broken model is listed with its reason (or, when its card reads but cannot be built, refused in one line
    when picked); the page never shows a traceback."""
    import re

    message = CARDS[request.node.callspec.params["broken_model"]][1]
    monkeypatch.setenv("XAI_MODELS_DIR", str(broken_model.parent))
    at = _app()
    at.switch_page("pages/explain.py").run()
    assert not at.exception
    listed = [m.value for e in at.expander if "cannot be used" in e.label for m in e.markdown]
    errors = [e.value for e in at.error]
    assert any(re.search(message, t) for t in listed + errors), (listed, errors)


@pytest.mark.parametrize("name", NPZ)
def test_npz_through_the_data_page(name, tmp_path, monkeypatch):
    import re

    override, message = NPZ[name]
    _npz(tmp_path, **override)
    monkeypatch.setenv("XAI_MODELS_DIR", str(tmp_path / "models"))
    at = _data_page_with_folder("pneumoniamnist", tmp_path)
    assert any(re.search(message, e.value) for e in at.error), [e.value for e in at.error]


@pytest.mark.parametrize("name", ["missing folder", "empty folder", "files but no class folders", "one class",
                                  "nothing readable", "symlink loop inside", "two good classes",
                                  "class folders linked back, to a sibling and outside"])
def test_folder_through_the_data_page(name, tmp_path, monkeypatch):
    import re

    folder, message = _folder_cases(tmp_path / "corpus")[name]
    monkeypatch.setenv("XAI_MODELS_DIR", str(tmp_path / "models"))
    at = _data_page_with_folder("folder", folder)
    if message is None:
        assert not at.error and at.get("plotly_chart")  # the class distribution of the folder
    else:
        assert any(re.search(message, e.value) for e in at.error), [e.value for e in at.error]


def test_linked_class_folders_are_left_out_and_said(tmp_path):
    """A class folder that links to the dataset folder, to another class or outside, and a file linking outside:
    left out (no copies of another class's images, nothing read from outside), each named with the reason."""
    folder, _ = _folder_cases(tmp_path)["class folders linked back, to a sibling and outside"]
    sizes = [len(load_dataset("folder", split=s, root=folder, size=16)) for s in ("train", "val", "test")]
    ds = load_dataset("folder", split="train", root=folder, size=16)
    assert list(ds.classes) == ["cats", "dogs"] and sum(sizes) == 6
    skipped = dict(ds.extras["skipped"])
    reasons = {Path(k).name: v for k, v in skipped.items()}
    assert "loop" in reasons["birds"] and "cats's folder" in reasons["kittens"] and "outside" in reasons["fish"]
    assert "outside" in reasons["away.png"]


@pytest.mark.parametrize("name", ["missing folder", "one class", "nothing readable", "two good classes",
                                  "class folders linked back, to a sibling and outside"])
def test_folder_through_cli_train(name, tmp_path, capsys):
    import re

    folder, message = _folder_cases(tmp_path / "corpus")[name]
    rc = main(["--models-dir", str(tmp_path / "models"), "train", "--dataset", "folder", "--data-dir", str(folder),
               "--size", "16", "--epochs", "1", "--model-id", "f"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if message is None:
        assert rc == 0 and (tmp_path / "models" / "f" / "card.json").is_file()
    else:
        assert rc == 2 and re.search(message, err), err


# ------------------------------------------------------------------------------------------------ CLI options
#: a command line per command that takes --methods, --split and --out (before the bad option is added)
COMMANDS = {
    "explain": ["explain", "--index", "0"],
    "explain-split": ["explain-split", "--limit", "2"],
    "quality": ["quality", "--n", "2", "--metrics", "sparseness"],
}
#: option kind -> (options, the precise message)
BAD_OPTIONS = {
    "--methods empty": (["--methods", ""], "--methods names no method"),
    "--methods commas only": (["--methods", ",,,"], "--methods names no method"),
    "--split bogus": (["--split", "bogus"], "invalid choice: 'bogus'"),
    "--out under a file": (["--out", "{file}/out"], "Not a directory"),
}


@pytest.mark.parametrize("kind", BAD_OPTIONS)
@pytest.mark.parametrize("command", COMMANDS)
def test_bad_cli_options_are_one_error_line_and_exit_2(command, kind, tiny_model_dir, tmp_path, capsys):
    options, message = BAD_OPTIONS[kind]
    (tmp_path / "file").write_text("x")
    argv = [*COMMANDS[command], "--model", str(tiny_model_dir)]
    if "--methods" not in options:
        argv += ["--methods", "saliency"]
    if "--out" not in options:
        argv += ["--out", str(tmp_path / "out")]
    argv += [o.format(file=tmp_path / "file") for o in options]
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own refusal (an invalid choice) prints usage and exits 2
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.npy"))


@pytest.fixture(autouse=True)
def time_limit():
    """No case may hang: each gets 120 s (SIGALRM; the tests run in the main thread)."""
    import signal

    def expired(signum, frame):
        raise TimeoutError("a bad-input case ran over 120 s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)
