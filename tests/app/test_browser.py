"""Real-browser smoke test: `streamlit run` headless + Debian's Chromium driven by Playwright."""
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
def server(tiny_model_dir, tmp_path):
    port = _free_port()
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("streamlit did not start:\n" + (tmp_path / "streamlit.log").read_text())
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_pages_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
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
    log = open(tmp_path / "api.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "core", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT)
    origin = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{origin}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("the API did not start:\n" + (tmp_path / "api.log").read_text())
            time.sleep(0.5)
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
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
