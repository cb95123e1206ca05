# Two entry points for a fresh machine: `make run` (app on the built-in demo) and `make test` (whole suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501

.PHONY: setup demo run api test bench screenshots clean-cache

# The virtual environment is rebuilt whenever a requirements file changes (requirements-import.txt: the optional
# packages that importing timm, Hugging Face and ONNX models needs).
$(VENV)/.installed: requirements.txt requirements-import.txt
	@echo "[1/3] Creating $(VENV) and installing the Python packages (first run only: a few minutes; pip lists each one)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar on -r requirements.txt -r requirements-import.txt
	touch $@

setup: $(VENV)/.installed

# Trains the demo model (small_cnn on the built-in shapes data) the first time only, with a progress bar.
demo: setup
	@echo "[2/3] The demo model (trained on the built-in shapes data the first time only, about 2 minutes)"
	$(PY) -m core ensure-demo

run: demo
	@echo "[3/3] Serving the app on http://localhost:$(PORT)"
	$(PY) -m streamlit run streamlit_app.py --server.headless true --server.port $(PORT) \
		--server.fileWatcherType none --browser.gatherUsageStats false

# The REST API beside the dashboard, on the same models (http://localhost:$(API_PORT)/docs).
API_PORT ?= 8000
api: demo
	$(PY) -m core serve --host 127.0.0.1 --port $(API_PORT)

test: setup
	$(PY) -m pytest -q -n 2 --dist loadscope

# The benchmarks (outside the library): make bench ARGS="--methods none --api"; every flag: python -m benchmarks --help
bench: demo
	$(PY) -m benchmarks $(ARGS)

# The README's screenshots (docs/screenshots/), taken by the real-browser test of the maps, stored in 256 colours.
screenshots: setup
	mkdir -p docs/screenshots
	XAI_SCREENSHOT_DIR=docs/screenshots $(PY) -m pytest -q -p no:cacheprovider \
		tests/app/test_browser.py::test_maps_a_room_can_read_in_chromium
	$(PY) -c "import sys, PIL.Image as I; [I.open(p).convert('RGB').quantize(256).save(p, optimize=True) \
		for p in sys.argv[1:]]" docs/screenshots/*.png

clean-cache:
	rm -rf data/shapes
