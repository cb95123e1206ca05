"""A run joins an existing multi-node Ray cluster unchanged (``address=``): a head and a worker node started on
this machine with ``ray.cluster_utils.Cluster``."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import RunError
from core.runs import explain_split, load_table, maps_of

ray = pytest.importorskip("ray")


def test_two_node_cluster_gives_the_local_maps(tiny_model_dir, tmp_path):
    from ray.cluster_utils import Cluster

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
