"""Real-browser smoke test: `streamlit run` headless + Debian's Chromium driven by Playwright."""
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.helpers import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    if os.environ.get("CI"):  # .ci/run installs it: a missing browser there is a failure, not a skip
        raise RuntimeError("CI needs Debian's chromium for the real-browser test (.ci/run installs it)")
    pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def random_imagenet_weights(tmp_path, monkeypatch):
    """Random tensors of ResNet-18's shapes under torchvision's file name in the server's TORCH_HOME: a weights file
    that fits but is not the published one."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    from tests.helpers import fake_weights

    fake_weights("resnet18")


@contextlib.contextmanager
def _serving(args: list[str], log_path, health_url: str, what: str):
    """Run ``python args...`` (a server on localhost) until ``health_url`` answers 200, bounded to 60 s; stop it after."""
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=os.environ.copy(), stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                if urllib.request.urlopen(health_url, timeout=2).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{what} did not start:\n" + log_path.read_text())
            time.sleep(0.5)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def _streamlit(tmp_path):
    """``streamlit run`` of the app on a free localhost port (its folders: this process's environment)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with _serving(["-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.headless", "true",
                   "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
                   "--browser.gatherUsageStats", "false"], tmp_path / "streamlit.log", f"{url}/_stcore/health",
                  "streamlit"):
        yield url


@pytest.fixture
def server(tiny_model_dir, tmp_path):
    with _streamlit(tmp_path) as url:
        yield url


@pytest.fixture
def empty_models_server(tmp_path, monkeypatch, isolated_dirs):
    """A server whose models folder is an empty one of this test's own: ``(url, models folder)``."""
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("XAI_MODELS_DIR", str(models))
    with _streamlit(tmp_path) as url:
        yield url, models


def test_pages_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = _chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(f"{server}/explain", timeout=60_000)
            page.wait_for_selector("text=Explain a prediction", timeout=60_000)
            # our own navigation (not the legacy file-name sidebar of a first paint)
            page.wait_for_selector("[data-testid='stSidebarNavLink'] >> text='Home'", timeout=60_000)
            page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=120_000)
            page.wait_for_function(
                "document.querySelectorAll(\"[data-testid='stImage'] img\").length >= 4 && "
                "!document.querySelector(\"[data-testid='stSkeleton']\")", timeout=120_000)
            page.wait_for_selector("[data-testid='stPlotlyChart']", timeout=60_000)
            shot = tmp_path / "explain.png"
            page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("XAI_SCREENSHOT_DIR"):
                shutil.copy(shot, os.environ["XAI_SCREENSHOT_DIR"])
            assert page.locator("[data-testid='stException']").count() == 0
            nav = page.locator("[data-testid='stSidebarNavLink']").all_inner_texts()
            # the router's pages (their titles, in its order), not file names
            from ui.router import PAGES

            titles = [title for _, title, _, _ in PAGES]
            assert [t.split()[-1] for t in nav] == titles and "Performance" in titles, nav
            assert page.locator("[data-testid='stAlert'] >> text=/error|failed/i").count() == 0
            captions = page.locator("[data-testid='stImage']").all_inner_texts()
            for title in ("Grad-CAM", "Integrated Gradients", "Saliency"):
                assert any(title in c for c in captions), captions
            # every image actually decoded in the browser
            sizes = page.eval_on_selector_all("[data-testid='stImage'] img", "els => els.map(e => e.naturalWidth)")
            assert len(sizes) >= 4 and min(sizes) > 0

            # results in view: at 1400x1000 and on a 1280x720 projector the first map is on screen unscrolled
            for w, h in ((1400, 1000), (1280, 720)):
                page.set_viewport_size({"width": w, "height": h})
                page.evaluate("window.scrollTo(0, 0)")
                box = page.locator("[data-testid='stImage'] img").nth(1).bounding_box()
                assert box is not None and box["y"] + box["height"] / 2 < h, (w, h, box)
            page.set_viewport_size({"width": 1400, "height": 1300})

            # every method selected once in the real page: no error, no exception, one map each

            from core import get_method, list_methods

            def pick(title: str) -> None:
                page.locator(".st-key-methods input").click()
                page.keyboard.type(title)
                page.locator("[role='option']", has_text=re.compile(f"^{re.escape(title)}$")).first.click()
                page.keyboard.press("Escape")
                page.wait_for_timeout(300)
                page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=180_000)

            defaults = {"grad_cam", "integrated_gradients", "saliency"}
            from core.modelling.architectures import build_model

            offered = list_methods(build_model("small_cnn", 3, 3, [0.5] * 3, [0.5] * 3))  # what the demo model offers
            for m in offered:
                if m not in defaults:
                    pick(get_method(m).title)
            page.wait_for_function(
                f"document.querySelectorAll(\"[data-testid='stImage'] img\").length >= {len(offered) + 2}",
                timeout=180_000)
            captions = page.locator("[data-testid='stImage']").all_inner_texts()
            for m in offered:
                start = get_method(m).title + (" →" if get_method(m).class_specific else " (the same map for every")
                assert sum(c.startswith(start) for c in captions) == 1, (m, captions)
            assert any(c.startswith("LIME superpixels") for c in captions)
            assert page.locator("[data-testid='stException']").count() == 0
            assert page.locator("[data-testid='stAlert'] >> text=/error|failed|went wrong/i").count() == 0
            page.screenshot(path=str(tmp_path / "explain_all.png"), full_page=True)
            if os.environ.get("XAI_SCREENSHOT_DIR"):
                shutil.copy(tmp_path / "explain_all.png", os.environ["XAI_SCREENSHOT_DIR"])
            # no developer toolbar (Deploy) in the demo configuration
            assert page.locator("[data-testid='stAppDeployButton']").count() == 0

            # the other pages render too
            for path, title, min_images, charts in (("compare", "Compare methods", 7, True), ("data", "Datasets", 24, True),
                                                     ("performance", "Model performance", 1, True),
                                                     ("train", "Train a model", 0, False),
                                                     ("quality", "Explanation quality", 0, False),
                                                     ("dataset", "Dataset: the model's strategies", 0, False)):
                page.goto(f"{server}/{path}", timeout=60_000)
                page.wait_for_selector(f"text={title}", timeout=60_000)
                page.wait_for_function(
                    f"document.querySelectorAll(\"[data-testid='stImage'] img\").length >= {min_images} && "
                    "document.querySelector(\"[data-testid='stApp']\").dataset.testScriptState === 'notRunning'",
                    timeout=180_000)
                if charts:
                    page.wait_for_selector("[data-testid='stPlotlyChart']", timeout=60_000)
                page.screenshot(path=str(tmp_path / f"{path}.png"), full_page=True)
                if os.environ.get("XAI_SCREENSHOT_DIR"):
                    shutil.copy(tmp_path / f"{path}.png", os.environ["XAI_SCREENSHOT_DIR"])
                assert page.locator("[data-testid='stException']").count() == 0, path
        finally:
            browser.close()


def _chromium(p):
    return p.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run", "--disable-quic"])


def test_api_docs_load_in_chromium_with_the_network_blocked(tmp_path):
    """/docs (Swagger UI) renders every operation with every request outside the API's own origin refused:
    their scripts and styles come from the installed package, not a CDN."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    origin = f"http://127.0.0.1:{port}"
    with _serving(["-m", "core", "serve", "--host", "127.0.0.1", "--port", str(port)], tmp_path / "api.log",
                  f"{origin}/health", "the API"):
        refused: list[str] = []

        def only_the_api(route):
            if route.request.url.startswith(origin + "/"):
                return route.continue_()
            refused.append(route.request.url)
            return route.abort("internetdisconnected")

        with sync_playwright() as p:
            browser = _chromium(p)
            try:
                page = browser.new_page(viewport={"width": 1300, "height": 1000})
                page.route("**/*", only_the_api)
                page.goto(f"{origin}/docs", timeout=60_000)
                page.wait_for_selector(".swagger-ui .opblock", timeout=60_000)
                assert "XAI dashboard API" in page.locator(".swagger-ui .info .title").inner_text()
                paths = page.locator(".opblock-summary-path").all_inner_texts()
                assert {"/predict", "/explain", "/models"} <= {t.replace("\u200b", "") for t in paths}, paths
                page.screenshot(path=str(tmp_path / "api_docs.png"), full_page=False)
                if os.environ.get("XAI_SCREENSHOT_DIR"):
                    shutil.copy(tmp_path / "api_docs.png", os.environ["XAI_SCREENSHOT_DIR"])
                assert not refused, refused  # nothing was fetched from anywhere else
            finally:
                browser.close()


def _idle(page, timeout: int = 180_000) -> None:
    page.wait_for_timeout(300)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)


def _choose(page, key: str, option: str) -> None:
    """Pick the option whose text starts with ``option`` in the select box with widget key ``key``."""
    page.locator(f".st-key-{key} input").first.click()
    page.keyboard.type(option)
    page.locator("[role='option']", has_text=re.compile("^" + re.escape(option))).first.click()
    _idle(page)


def _shot(page, tmp_path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    if os.environ.get("XAI_SCREENSHOT_DIR"):
        shutil.copy(tmp_path / f"{name}.png", os.environ["XAI_SCREENSHOT_DIR"])


def _shot_whole(page, tmp_path, name: str, most: int = 6000) -> None:
    """:func:`_shot` of the whole page: Streamlit scrolls inside its own containers, so ``full_page`` alone stops at
    the window; the window is made as tall as the tallest scrolled content (at most ``most`` px) for the shot."""
    view = page.viewport_size
    tall = page.evaluate(  # the scrolled containers' content (main area, sidebar), not a hidden list's
        "() => Math.max(0, ...Array.from(document.querySelectorAll('*')).filter(e => e.clientHeight > 0 && "
        "['auto', 'scroll'].includes(getComputedStyle(e).overflowY)).map(e => e.scrollHeight))")
    page.set_viewport_size({"width": view["width"], "height": max(view["height"], min(int(tall), most))})
    page.wait_for_timeout(300)
    try:
        _shot(page, tmp_path, name)
    finally:
        page.set_viewport_size(view)


def test_demo_flows_in_chromium(random_imagenet_weights, server, tmp_path):
    """The flows of a demo, in a real browser: the exports carry the model's warnings and each map's colour bar;
    the chosen methods survive the Upload view; a training goes on through a reload with its Cancel; a weights file
    that is not the published one is said where the model is shown."""
    import json

    import numpy as np
    from PIL import Image
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = _chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(f"{server}/explain", timeout=60_000)
            page.wait_for_selector("text=Explain a prediction", timeout=60_000)
            _idle(page)
            page.wait_for_function("document.querySelectorAll(\"[data-testid='stImage'] img\").length >= 4",
                                   timeout=180_000)
            # the exports: the figure carries the warning the page shows (the demo model is flagged) and a colour bar
            # under each map; the report carries it too
            warned = page.locator("[data-testid='stAlert']", has_text="Do not trust").count()
            assert warned == 1  # the test's demo model (one short epoch) is flagged: one box with every reason
            with page.expect_download(timeout=60_000) as got:
                page.get_by_role("button", name="Download figure (PNG)").click()
            figure = Image.open(got.value.path())
            meta = json.loads(figure.text["provenance"])
            assert meta["model"] == "shapes-small_cnn"
            from core.present.render import _font_chars

            drawn = figure.text["Description"]  # every text the figure draws, as drawn
            assert "→" in drawn and "Do not trust" not in drawn and "near chance level" in drawn
            assert not {c for c in drawn if ord(c) not in _font_chars() and c != "\n"}  # no missing glyph
            band = (np.abs(np.asarray(figure.convert("RGB")).astype(int) - (255, 243, 205)).sum(axis=-1) < 6)
            assert (band.mean(axis=1) > 0.5).sum() >= 16  # the warning, on its band, in the figure
            with page.expect_download(timeout=60_000) as got:
                page.get_by_role("button", name="Download report (HTML)").click()
            report = open(got.value.path(), encoding="utf-8").read()
            assert "&#9888;" in report and "<svg" in report
            figure.save(tmp_path / "exported_figure.png")
            if os.environ.get("XAI_SCREENSHOT_DIR"):
                shutil.copy(tmp_path / "exported_figure.png", os.environ["XAI_SCREENSHOT_DIR"])

            # the chosen methods survive the Upload view (its picker is not drawn until there is an image)
            page.locator(".st-key-methods input").click()
            page.keyboard.type("Grad-CAM++")
            page.locator("[role='option']", has_text=re.compile("^Grad-CAM\\+\\+$")).first.click()
            page.keyboard.press("Escape")
            _idle(page)
            tags = ("els => els.map(e => e.getAttribute('aria-label'))")
            before = page.locator(".st-key-methods [data-tag]").evaluate_all(tags)
            assert "Grad-CAM++" in before, before
            page.locator(".st-key-image_source").get_by_text("Upload", exact=True).click()
            _idle(page)
            page.wait_for_selector("text=Upload an image to explain", timeout=60_000)
            page.locator(".st-key-image_source").get_by_text("Dataset", exact=True).click()
            _idle(page)
            page.wait_for_selector(".st-key-methods [data-tag]", timeout=60_000)
            after = page.locator(".st-key-methods [data-tag]").evaluate_all(tags)
            assert after == before, (before, after)

            # a training goes on through a reload: progress and Cancel again, Train disabled, then Cancel stops it
            page.goto(f"{server}/train", timeout=60_000)
            page.wait_for_selector("text=Train a model", timeout=60_000)
            _idle(page)
            epochs = page.get_by_label("Epochs", exact=True)
            epochs.fill("40")
            epochs.press("Enter")
            _idle(page)
            page.get_by_role("button", name="Train", exact=True).click()
            page.wait_for_selector("text=Cancel (keep nothing)", timeout=120_000)
            page.reload()
            page.wait_for_selector("text=Cancel (keep nothing)", timeout=120_000)
            assert page.get_by_role("button", name="Train", exact=True).is_disabled()
            page.locator("[data-testid='stProgress']", has_text=re.compile(r"(s|min) left|estimating")).first.wait_for(
                timeout=60_000)  # the time left, or that it is coming
            _shot(page, tmp_path, "train_after_reload")
            page.get_by_role("button", name="Cancel (keep nothing)").click()
            page.wait_for_selector("text=Cancelled", timeout=120_000)
            expect(page.get_by_role("button", name="Train", exact=True)).to_be_enabled(timeout=30_000)

            # a weights file that is not torchvision's published one: said in the model box and above the maps
            page.goto(f"{server}/explain", timeout=60_000)
            page.wait_for_selector("text=Explain a prediction", timeout=60_000)
            _idle(page)
            _choose(page, "dataset", "ImageNet models")
            page.wait_for_selector("text=/not torchvision's published resnet18 file/", timeout=120_000)
            shown = page.locator(".st-key-model").evaluate(
                "e => e.textContent + ' ' + Array.from(e.querySelectorAll('input')).map(i => i.value).join(' ')")
            assert "NOT the published weights" in shown, shown
            assert page.locator("text=/top-1 69.8% published/").count() == 0
            _shot(page, tmp_path, "explain_unpublished_weights")
            assert page.locator("[data-testid='stException']").count() == 0
        finally:
            browser.close()


def test_a_model_imported_by_upload_is_explained_in_chromium(empty_models_server, tmp_path):
    """A small_cnn state dict uploaded on the Import page, its card given three classes and 32 px in the form, saved,
    then chosen on Explain under the imported models: an uploaded PNG gets its maps, with no error anywhere."""
    import numpy as np
    from PIL import Image
    from playwright.sync_api import expect, sync_playwright

    from core import get_method
    from tests import model_files as mf

    server, models = empty_models_server
    weights = mf.save_state_dict(mf.torchvision_model("small_cnn", 3), tmp_path / "browser_net.pth")
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(photo)

    def no_error() -> None:
        assert page.locator("[data-testid='stException']").count() == 0
        errors = page.locator("[data-testid='stAlert'] >> text=/error|failed|went wrong/i").all_inner_texts()
        assert not errors, errors

    with sync_playwright() as p:
        browser = _chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(f"{server}/import_model", timeout=60_000)
            page.wait_for_selector("text=Import a model", timeout=60_000)
            page.wait_for_selector("[data-testid='stSidebarNavLink'] >> text='Home'", timeout=60_000)
            _idle(page, 60_000)

            # the file uploaded through the page's own drop zone, then read
            page.locator(".st-key-imp_how").get_by_text("Upload", exact=True).click()
            _idle(page, 60_000)
            page.locator(".st-key-imp_upload [data-testid='stFileUploaderDropzoneInput']").set_input_files(
                str(weights), timeout=30_000)
            page.locator(".st-key-imp_upload", has_text="browser_net.pth").wait_for(timeout=60_000)
            _idle(page, 60_000)  # (while it reruns, the button's old and new versions are both in the page)
            read = page.get_by_role("button", name="Read the model", exact=True)
            expect(read).to_be_enabled(timeout=60_000)  # enabled once the upload is in the box
            read.click()
            page.wait_for_selector("text=Its card: browser_net", timeout=120_000)
            _idle(page, 120_000)
            no_error()
            classes = page.locator(".st-key-imp-field-classes textarea")
            assert classes.input_value() == "class 0\nclass 1\nclass 2"
            _shot_whole(page, tmp_path, "import_page")

            # three class names and 32 px in the form, applied (each field commits: Apply waits for an edit)
            classes.fill("red\ngreen\nblue")
            classes.press("Control+Enter")
            _idle(page, 60_000)
            size = page.locator(".st-key-imp-field-input_size input")
            size.fill("32")
            size.press("Enter")
            _idle(page, 60_000)
            page.wait_for_selector("text=Edits not applied yet", timeout=30_000)
            apply = page.get_by_role("button", name="Apply", exact=True)
            expect(apply).to_be_enabled(timeout=30_000)
            apply.click()
            page.wait_for_selector("text=Input size: given", timeout=120_000)
            _idle(page, 120_000)
            no_error()
            assert page.locator("text=Edits not applied yet").count() == 0
            assert classes.input_value() == "red\ngreen\nblue" and size.input_value() == "32"
            page.wait_for_selector("text=Classes: given", timeout=30_000)
            page.wait_for_selector("text=/Imported models \\(any image\\)/", timeout=30_000)  # no dataset's classes

            # saved: its card in the server's models folder, no staged upload left
            save = page.get_by_role("button", name="Save", exact=True)
            expect(save).to_be_enabled(timeout=30_000)
            save.click()
            page.locator("[data-testid='stAlert']", has_text="Saved browser_net").wait_for(timeout=120_000)
            _idle(page, 60_000)
            no_error()
            assert (models / "browser_net" / "card.json").is_file()
            assert not list(models.glob(".uploads/*"))

            # Explain, in the same session: the imported models, an uploaded PNG, Grad-CAM and one more
            page.locator("[data-testid='stSidebarNavLink']", has_text=re.compile(r"Explain$")).click()
            page.wait_for_selector("text=Explain a prediction", timeout=60_000)
            _idle(page, 120_000)
            _choose(page, "dataset", "Imported models (any image)")
            page.wait_for_function(  # the model box shows it (a select box's value is its input's)
                "() => Array.from(document.querySelectorAll('.st-key-model input'))"
                ".some(i => i.value.startsWith('browser_net (imported state_dict'))", timeout=30_000)
            no_error()
            page.locator(".st-key-image_source").get_by_text("Upload", exact=True).click()  # (the first: no-op)
            _idle(page, 60_000)
            page.locator(".st-key-upload [data-testid='stFileUploaderDropzoneInput']").set_input_files(
                str(photo), timeout=30_000)
            page.wait_for_selector(".st-key-methods", timeout=120_000)
            _idle(page, 180_000)
            tags = page.locator(".st-key-methods [data-tag]").evaluate_all(
                "els => els.map(e => e.getAttribute('aria-label'))")
            wanted = [get_method(m).title for m in ("grad_cam", "saliency")]
            for title in wanted:
                if title not in tags:
                    page.locator(".st-key-methods input").click()
                    page.keyboard.type(title)
                    page.locator("[role='option']", has_text=re.compile(f"^{re.escape(title)}$")).first.click()
                    page.keyboard.press("Escape")
                    _idle(page)
            tags = page.locator(".st-key-methods [data-tag]").evaluate_all(
                "els => els.map(e => e.getAttribute('aria-label'))")
            assert set(wanted) <= set(tags), tags
            page.wait_for_function(  # a decoded tile under each chosen method's caption
                "titles => titles.every(t => Array.from(document.querySelectorAll(\"[data-testid='stImage']\"))"
                ".some(e => e.innerText.startsWith(t + ' →') && e.querySelector('img')?.naturalWidth > 0))",
                arg=wanted, timeout=180_000)
            _idle(page)
            captions = [c for c in page.locator("[data-testid='stImage']").all_inner_texts() if "→" in c]
            for title in wanted:
                assert sum(c.startswith(title + " →") for c in captions) == 1, (title, captions)
            sizes = page.eval_on_selector_all("[data-testid='stImage'] img", "els => els.map(e => e.naturalWidth)")
            assert sizes and min(sizes) > 0  # every image decoded
            page.wait_for_selector("text=photo.png: 90x60 RGB → 32x32", timeout=30_000)
            no_error()
            _shot_whole(page, tmp_path, "import_explained")
        finally:
            browser.close()


#: every colour bar on the page with the map above it in its column: its text alternative, its rule, whether the
#: browser decoded it, and the boxes of both
_BARS = """() => Array.from(document.querySelectorAll('img.xai-colour-bar')).map(b => {
    const r = b.getBoundingClientRect();
    const col = b.closest('[data-testid="stColumn"]');
    const maps = col ? Array.from(col.querySelectorAll('[data-testid="stImage"] img'))
        .filter(i => i.getBoundingClientRect().bottom <= r.top + 1) : [];
    const m = maps.length ? maps[maps.length - 1].getBoundingClientRect() : null;
    return {alt: b.alt, aria: b.getAttribute('aria-label'), rule: b.dataset.rule, loaded: b.complete && b.naturalWidth > 0,
            w: r.width, h: r.height, ratio: b.naturalHeight / b.naturalWidth, fit: getComputedStyle(b).objectFit, top: r.top,
            map: m && {w: m.width, bottom: m.bottom}};
})"""


def _bars_under_maps(page, expected: int) -> list[dict]:
    """The colour bars found in the DOM, each checked: decoded, named a colour bar and its rule for screen readers,
    directly under a map and as wide as it (the tile's size)."""
    bars = page.evaluate(_BARS)
    assert len(bars) == expected, bars
    for b in bars:
        assert b["loaded"] and b["rule"] in ("signed", "magnitude"), b
        assert b["alt"] == b["aria"] and b["alt"].startswith(f"Colour bar, {b['rule']} rule"), b
        assert b["map"] is not None, b  # a map above it in its column
        assert abs(b["w"] - b["map"]["w"]) <= 0.05 * b["map"]["w"] + 2, b
        # the bar itself drawn at that size: its box keeps the bar's proportions and the bar fills it (Streamlit's
        # "scale-down" drew a 240 px bar in the middle of a 600 px box)
        assert abs(b["h"] - b["w"] * b["ratio"]) <= 2 and b["fit"] == "fill", b
        assert 0 <= b["top"] - b["map"]["bottom"] < 80, b
    return bars


def test_maps_a_room_can_read_in_chromium(server, tmp_path):
    """Explain and Compare as a room sees them: a colour bar the browser draws under every map, at the tile's width,
    with its text alternative; tiles that fill the row; presentation mode without the sidebar and with larger tiles;
    both figures exported as 16:9 slides that say each map's rule. Screenshots at 1400x1000 and on a 1280x720
    projector (the README shows them: ``XAI_SCREENSHOT_DIR``)."""
    import io
    import json

    from PIL import Image
    from playwright.sync_api import sync_playwright

    def maps_in_view(page, least: int) -> None:
        page.wait_for_function(f"document.querySelectorAll('img.xai-colour-bar').length >= {least} && "
                               "!document.querySelector(\"[data-testid='stSkeleton']\")", timeout=180_000)
        _idle(page)

    def tile_widths(page) -> list[float]:  # the maps' tiles: the images in a column with a colour bar
        return page.evaluate("() => Array.from(document.querySelectorAll('[data-testid=\"stColumn\"]'))"
                             ".filter(c => c.querySelector('img.xai-colour-bar'))"
                             ".map(c => c.querySelector('[data-testid=\"stImage\"] img').getBoundingClientRect().width)")

    def maps_centred(page) -> None:  # a room looks at the maps: their row in the middle of the window for the shot
        page.locator("img.xai-colour-bar").first.evaluate(
            "e => e.closest('[data-testid=\"stHorizontalBlock\"]').scrollIntoView({block: 'center'})")
        page.wait_for_timeout(300)

    def exported(page, button: str) -> Image.Image:
        with page.expect_download(timeout=60_000) as got:
            page.get_by_role("button", name=button).click()
        return Image.open(io.BytesIO(open(got.value.path(), "rb").read()))

    with sync_playwright() as p:
        browser = _chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{server}/explain", timeout=60_000)
            page.wait_for_selector("text=Explain a prediction", timeout=60_000)
            maps_in_view(page, 3)
            bars = _bars_under_maps(page, 3)  # the three default methods: one bar under each map
            assert {b["rule"] for b in bars} == {"magnitude"} or len({b["rule"] for b in bars}) >= 1
            widths = tile_widths(page)
            row = page.evaluate("() => { const b = document.querySelector('[data-testid=\"stMainBlockContainer\"]'); "
                                "const s = getComputedStyle(b); "
                                "return b.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight); }")
            # the original and three maps fill the row: four tiles (not six columns of 143 px, half of them empty)
            assert len(widths) == 3 and 4 * min(widths) > 0.9 * row, (widths, row)
            _shot(page, tmp_path, "maps_explain_1400x1000")
            page.set_viewport_size({"width": 1280, "height": 720})
            page.wait_for_timeout(500)
            _bars_under_maps(page, 3)
            maps_centred(page)
            _shot(page, tmp_path, "maps_explain_1280x720")
            figure = exported(page, "Download figure (PNG)")
            assert abs(figure.width / figure.height - 16 / 9) < 0.02, figure.size
            figure.save(tmp_path / "maps_explain_figure.png")

            # presentation mode: no sidebar, two tiles a row (four, as even as can be), larger than before, bars
            # still under every map
            page.get_by_text("Presentation mode", exact=True).click()
            _idle(page)
            page.wait_for_timeout(500)
            assert not page.locator("section[data-testid='stSidebar']").is_visible()
            _bars_under_maps(page, 3)
            large = tile_widths(page)
            assert min(large) > 1.2 * min(page_widths := widths) * 1280 / 1400, (large, page_widths)
            maps_centred(page)
            _shot(page, tmp_path, "maps_explain_presentation_1280x720")
            _bars_under_maps(page, 3)  # as shot
            page.get_by_text("Presentation mode", exact=True).click()
            _idle(page)

            # Compare: a bar under every map of the grid, and its figure as a 16:9 slide
            page.set_viewport_size({"width": 1400, "height": 1000})
            page.goto(f"{server}/compare", timeout=60_000)
            page.wait_for_selector("text=Compare methods", timeout=60_000)
            maps_in_view(page, 2)
            n_images = page.locator("[data-testid='stImage']", has_text=re.compile(r"^#\d+ · true")).count()
            n_methods = len(page.locator("[data-testid='stColumn'] strong").all_inner_texts()) - 1
            assert n_images >= 1 and n_methods >= 1
            _bars_under_maps(page, n_images * n_methods)
            _shot(page, tmp_path, "maps_compare_1400x1000")
            page.set_viewport_size({"width": 1280, "height": 720})
            page.wait_for_timeout(500)
            maps_centred(page)
            _shot(page, tmp_path, "maps_compare_1280x720")
            grid = exported(page, "Download grid (PNG)")
            assert abs(grid.width / grid.height - 16 / 9) < 0.02, grid.size
            assert json.loads(grid.text["provenance"])["model"] == "shapes-small_cnn"
            grid.save(tmp_path / "maps_compare_figure.png")
            for name in ("maps_explain_figure", "maps_compare_figure"):
                if os.environ.get("XAI_SCREENSHOT_DIR"):
                    shutil.copy(tmp_path / f"{name}.png", os.environ["XAI_SCREENSHOT_DIR"])
            assert page.locator("[data-testid='stException']").count() == 0
        finally:
            browser.close()
