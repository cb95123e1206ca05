"""The Ray engine gives the local engine's maps bit for bit, with 1 and 2 workers (one local Ray cluster for the
module: starting one costs seconds), and on a two-node cluster joined by its address (last: it stops the module's
cluster). One module, so that no two Ray clusters of the tests ever run at once (also under pytest-xdist)."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import RunError
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


def test_ray_runs_an_imported_model_like_the_local_engine(cluster, tmp_path):
    """A model imported from an ONNX graph: Ray's actors load it from its folder (its format's reader) and give the
    local engine's maps bit for bit."""
    from core.importers import inspect_source, save_imported
    from tests import model_files as mf

    path, _ = mf.write_format("onnx", tmp_path / "src", num_classes=4)
    folder = save_imported(inspect_source(path, classes=["circle", "square", "triangle", "cross"]), tmp_path / "models")
    kw = {"limit": 16, "part_size": 8}
    local = explain_split(folder, None, "test", ["grad_cam"], tmp_path / "local", **kw)
    remote = explain_split(folder, None, "test", ["grad_cam"], tmp_path / "ray", engine="ray", workers=1, **kw)
    assert remote["engine"]["name"] == "ray" and remote["plan_sha256"] == local["plan_sha256"]
    assert np.array_equal(maps_of(load_table(tmp_path / "local", "grad_cam")), maps_of(load_table(tmp_path / "ray",
                                                                                                   "grad_cam")))


def test_two_node_cluster_gives_the_local_maps(tiny_model_dir, tmp_path):
    """A run joins an existing multi-node cluster unchanged (``address=``): a head and a worker node started on this
    machine with ``ray.cluster_utils.Cluster`` (after the module's one-node cluster is stopped)."""
    from ray.cluster_utils import Cluster

    ray.shutdown()
    kw = {"limit": 32, "part_size": 16}
    explain_split(tiny_model_dir, None, "test", ["grad_cam"], tmp_path / "local", **kw)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        manifest = explain_split(tiny_model_dir, None, "test", ["grad_cam"], tmp_path / "ray", engine="ray",
                                 address=cluster.address, **kw)
        assert manifest["engine"]["address"] == cluster.address and manifest["engine"]["cluster_cpus"] == 2
        assert manifest["engine"]["workers"] == 2 and manifest["engine"]["threads"] == 1
        assert not ray.is_initialized()  # the run connected for itself and disconnected; the cluster goes on
    finally:
        cluster.shutdown()
    a, b = load_table(tmp_path / "local", "grad_cam"), load_table(tmp_path / "ray", "grad_cam")
    assert np.array_equal(maps_of(a), maps_of(b))


def test_an_unreachable_cluster_is_a_clear_error(tiny_model_dir, tmp_path):
    with pytest.raises(RunError, match="cannot connect to the Ray cluster at 127.0.0.1:1.*ray start --head"):
        explain_split(tiny_model_dir, None, "test", ["grad_cam"], tmp_path / "x", engine="ray",
                      address="127.0.0.1:1", limit=4)
    assert not ray.is_initialized()
