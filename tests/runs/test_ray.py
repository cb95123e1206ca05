"""The Ray engine gives the local engine's maps bit for bit, with 1 and 2 workers (one local Ray cluster for the
module: starting one costs seconds)."""
from __future__ import annotations

import numpy as np
import pytest

from core.runs import explain_split, load_table, maps_of, read_manifest

ray = pytest.importorskip("ray")

METHODS = ["grad_cam", "saliency", "smoothgrad"]
KW = {"limit": 48, "part_size": 16, "params": {"smoothgrad": {"n_samples": 3}}}


@pytest.fixture(scope="module")
def cluster():
    from core.runs.engines import start_ray

    assert start_ray(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    explain_split(tiny_model_dir, None, "test", METHODS, out, **KW)
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_maps_equal_local_maps_bit_for_bit(cluster, local_run, tiny_model_dir, tmp_path, workers):
    seen = []
    manifest = explain_split(tiny_model_dir, None, "test", METHODS, tmp_path / "ray", engine="ray", workers=workers,
                             progress=lambda done, total, msg: seen.append((done, total)), **KW)
    assert manifest["engine"]["name"] == "ray" and manifest["engine"]["workers"] == workers
    assert manifest["engine"]["threads"] == 2 // workers  # torch threads per actor = its CPUs
    assert manifest["plan_sha256"] == read_manifest(local_run)["plan_sha256"]
    assert seen[-1] == (48, 48) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    for method in METHODS:
        a, b = load_table(local_run, method), load_table(tmp_path / "ray", method)
        assert np.array_equal(maps_of(a), maps_of(b)), method
        for col in ("image_id", "label", "prediction", "target", "probability"):
            assert a.column(col).equals(b.column(col)), col
    assert ray.is_initialized()  # a cluster the caller started is left running


def test_ray_resumes_a_local_run(cluster, local_run, tiny_model_dir, tmp_path):
    """Parts are interchangeable between engines: a run started locally and cut short is finished on Ray."""
    import shutil

    out = tmp_path / "mixed"
    shutil.copytree(local_run, out)
    (out / "manifest.json").unlink()
    parts = sorted((out / "parts").iterdir())
    parts[1].unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in (parts[0], parts[2])}
    manifest = explain_split(tiny_model_dir, None, "test", METHODS, out, engine="ray", workers=1, **KW)
    assert manifest["engine"]["name"] == "ray" and manifest["rows"] == 48 * 3
    assert {p.name: p.stat().st_mtime_ns for p in (parts[0], parts[2])} == kept
    for method in METHODS:
        assert np.array_equal(maps_of(load_table(local_run, method)), maps_of(load_table(out, method)))
