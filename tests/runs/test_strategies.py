"""Spectral relevance analysis: known-answer clusterings on hand-made maps, the eigengap, the numbers per cluster,
and the built-in Clever Hans found in a real run (a model trained on shapes_spurious)."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import ParameterError
from core.runs import strategies


def corner_maps(n_per: int = 30, seed: int = 0, size: int = 32):
    """Three strategies: relevance in the top-left corner, the centre, or the bottom edge (with noise)."""
    rng = np.random.default_rng(seed)
    maps, truth = [], []
    for g, (ys, xs) in enumerate([(slice(0, 8), slice(0, 8)), (slice(12, 20), slice(12, 20)), (slice(26, 32), slice(0, 32))]):
        for _ in range(n_per):
            m = rng.random((size, size)).astype(np.float32) * 0.05
            m[ys, xs] += rng.random((m[ys, xs].shape)) + 0.5
            maps.append(m * rng.uniform(0.1, 10))  # scale must not matter
            truth.append(g)
    return np.stack(maps), np.array(truth)


def test_three_strategies_are_found_with_the_eigengap():
    maps, truth = corner_maps()
    c = strategies.cluster_maps(maps)
    assert c.suggested_k == 3 and c.k == 3
    assert strategies.agreement(c.labels, truth) == pytest.approx(1.0)
    assert c.embedding.shape == (90, 2) and np.isfinite(c.embedding).all()
    # the eigenvalues of the Laplacian: three near zero (three components), then a jump
    assert c.eigenvalues[2] < 0.05 < c.eigenvalues[3]
    # the images nearest a centre are members of that cluster
    for k in range(3):
        assert (c.labels[c.nearest(k, 5)] == k).all()


def test_a_fixed_k_is_kept_and_seeded_runs_repeat():
    maps, truth = corner_maps(seed=1)
    a, b = strategies.cluster_maps(maps, k=2, seed=3), strategies.cluster_maps(maps, k=2, seed=3)
    assert a.k == 2 and np.array_equal(a.labels, b.labels)
    assert len(set(a.labels[truth == 0])) == 1  # a merge of two strategies, never a split of one
    with pytest.raises(ParameterError, match="at least 4 maps"):
        strategies.cluster_maps(maps[:3])
    with pytest.raises(ParameterError, match="number of clusters"):
        strategies.cluster_maps(maps, k=0)


def test_agreement_is_the_adjusted_rand_index():
    a = np.array([0, 0, 1, 1, 2, 2])
    assert strategies.agreement(a, a) == 1.0
    assert strategies.agreement(a, np.array([5, 5, 3, 3, 9, 9])) == 1.0  # names of clusters do not matter
    rng = np.random.default_rng(0)
    assert abs(strategies.agreement(rng.integers(0, 3, 3000), rng.integers(0, 3, 3000))) < 0.02


def test_summaries_count_accuracy_labels_and_mass_on_a_region():
    maps = np.zeros((4, 4, 4), np.float32)
    maps[0, 0, 0] = maps[1, 0, 0] = 1.0  # all on the region
    maps[2, 3, 3] = maps[3, 3, 3] = 1.0  # none on it
    region = np.zeros((4, 4, 4), bool)
    region[:, 0, 0] = True
    groups, labels, preds = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), np.array([0, 0, 1, 1])
    rows = strategies.summarise(groups, labels, preds, maps, ["a", "b"], region, np.array([True, False, True, False]))
    assert [r["size"] for r in rows] == [2, 2]
    assert rows[0]["accuracy"] == 0.5 and rows[1]["accuracy"] == 1.0
    assert rows[0]["labels"] == {"a": 1, "b": 1} and rows[1]["labels"] == {"b": 2}
    assert rows[0]["region_mass"] == 1.0 and rows[1]["region_mass"] == 0.0
    assert rows[0]["accuracy_when_region_lies"] == 1.0 and rows[0]["lies"] == 1
    assert rows[0]["mean_map"][0, 0] == pytest.approx(1.0)
    assert list(strategies.confidence_bins(np.array([0.2, 0.5, 0.9, 0.99]))) == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def clever_hans_run(tmp_path_factory):
    """A small_cnn trained 2 epochs on shapes_spurious at 32 px (it learns the marker), and Integrated Gradients
    over a seeded sample of 600 of its 1,000 test images."""
    from core.modelling.training import TrainConfig, train
    from core.runs import explain_split

    models = tmp_path_factory.mktemp("hans")
    _, card, path = train(TrainConfig(dataset="shapes_spurious", epochs=2, size=32, model_id="hans"), None, models)
    out = tmp_path_factory.mktemp("hans_run")
    manifest = explain_split(path, None, "test", ["integrated_gradients"], out, sample=600,
                             params={"integrated_gradients": {"n_steps": 8}})
    return out, manifest


def test_the_clever_hans_shortcut_shows_as_a_cluster_with_numbers(clever_hans_run):
    """Some cluster of some class puts far more than its area's share of positive relevance on the marker (the
    marker is 1.6% of the image), and its accuracy on the test images whose marker names another class is near
    zero; the cluster that looks least at the marker is right far more often where the marker lies."""
    from core import load_dataset
    from core.runs import load_table

    out, manifest = clever_hans_run
    assert manifest["images"]["count"] == 600 and not manifest["failures"]
    ds = load_dataset("shapes_spurious", split="test", size=32)
    table = load_table(out)
    found = []
    for cls in range(4):
        s = strategies.class_strategies(table, "integrated_gradients", "predicted", cls, manifest["dataset"]["classes"],
                                        region=ds.extras["marker_masks"], region_class=ds.extras["marker_class"])
        found += s.clusters
    found = [r for r in found if r["lies"] >= 5]
    shortcut = max(found, key=lambda r: r["region_mass"])
    honest = min(found, key=lambda r: r["region_mass"])
    area = ds.extras["marker_masks"].mean()
    assert area < 0.05 and shortcut["region_mass"] > 5 * area, (area, shortcut["region_mass"])
    assert shortcut["accuracy_when_region_lies"] < 0.2, shortcut
    assert honest["region_mass"] < shortcut["region_mass"] / 3, (honest, shortcut)
    assert honest["accuracy_when_region_lies"] > shortcut["accuracy_when_region_lies"] + 0.3, (honest, shortcut)
