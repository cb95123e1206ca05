"""Shared fixtures: isolated data/models folders, a tiny trained model, hand-built models."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # two test processes on two cores: one torch thread each, no oversubscription
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def isolated_dirs(tmp_path_factory):
    """Every test uses temporary data/models folders, never the user's ``data/`` and ``models/``."""
    data = tmp_path_factory.mktemp("data")
    models = tmp_path_factory.mktemp("models")
    mlruns = tmp_path_factory.mktemp("mlruns")
    torch_home = tmp_path_factory.mktemp("torch_home")
    runs = tmp_path_factory.mktemp("runs")
    jobs = tmp_path_factory.mktemp("jobs")
    old = {k: os.environ.get(k) for k in ("XAI_DATA_DIR", "XAI_MODELS_DIR", "XAI_DEVICE", "MLFLOW_TRACKING_URI",
                                          "TORCH_HOME", "XAI_RUNS_DIR", "XAI_JOBS_DIR")}
    os.environ["XAI_RUNS_DIR"] = str(runs)
    os.environ["XAI_JOBS_DIR"] = str(jobs)
    os.environ["TORCH_HOME"] = str(torch_home)  # no weights from the user's torch cache: tests write their own
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{mlruns / 'mlflow.db'}"  # never the project's own store
    os.environ["XAI_DATA_DIR"] = str(data)
    os.environ["XAI_MODELS_DIR"] = str(models)
    os.environ["XAI_DEVICE"] = "cpu"  # the tests run on the CPU even where CUDA is present
    yield {"data": data, "models": models, "mlruns": mlruns, "torch_home": torch_home, "runs": runs, "jobs": jobs}
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def tiny_model_dir(isolated_dirs) -> Path:
    """A small_cnn trained for one short epoch on shapes, saved under the demo id in the test models folder."""
    from core import config
    from core.modelling.training import TrainConfig, train

    _, _, path = train(TrainConfig(epochs=1, max_train=512, model_id=config.DEMO_MODEL_ID), None, isolated_dirs["models"])
    return path


@pytest.fixture(scope="session")
def shapes_model_dir(isolated_dirs, tmp_path_factory) -> Path:
    """A shapes model that learned something (3 epochs at 32 px, about 80% test accuracy when written), in its own
    models folder, with its saved evaluation and out-of-distribution statistics."""
    from core.modelling.training import TrainConfig, train

    _, _, path = train(TrainConfig(epochs=3, size=32, model_id="shapes-good"), None, tmp_path_factory.mktemp("good_models"))
    return path


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from core import load_model

    return load_model(tiny_model_dir)


@pytest.fixture
def fresh_caches():
    """Every test starts with empty caches and no remembered dataset folders."""
    import streamlit as st

    from core import settings

    def clear():
        st.cache_data.clear()
        st.cache_resource.clear()
        settings.settings_path().unlink(missing_ok=True)

    clear()
    yield
    clear()
