import numpy as np
import pytest
import torch

from core import load_dataset
from core.datasets import shapes


def test_generation_is_deterministic_and_seed_dependent():
    a = shapes.generate(12, seed=5, size=32)
    b = shapes.generate(12, seed=5, size=32)
    c = shapes.generate(12, seed=6, size=32)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_images_labels_and_masks_are_consistent():
    images, labels, masks = shapes.generate(80, seed=1)
    assert images.shape == (80, 64, 64, 3) and images.dtype == np.uint8
    assert masks.shape == (80, 64, 64) and masks.dtype == bool
    assert np.bincount(labels, minlength=4).tolist() == [20, 20, 20, 20]  # balanced
    area = masks.reshape(80, -1).mean(axis=1)
    assert area.min() > 0.01 and area.max() < 0.5  # every image has one visible, bounded object
    # The object is a flat saturated colour: its pixels vary far less than the textured background.
    inside = np.array([images[i][masks[i]].std(axis=0).mean() for i in range(80)])
    outside = np.array([images[i][~masks[i]].std(axis=0).mean() for i in range(80)])
    assert np.median(inside) < 0.5 * np.median(outside)
    # Crosses fill less of their bounding circle than circles of the same radius do.
    circ, cross = area[labels == 0].mean(), area[labels == 3].mean()
    assert cross < circ


def test_load_caches_split_and_reuses_it(isolated_dirs):
    ds = load_dataset("shapes", split="val")
    assert len(ds) == shapes.SPLITS["val"][0]
    path = shapes.cache_path(isolated_dirs["data"], "val", 64)
    assert path.is_file()
    again = load_dataset("shapes", split="val")
    np.testing.assert_array_equal(ds.images, again.images)
    x, y = ds[3]
    assert isinstance(x, torch.Tensor) and x.shape == (3, 64, 64) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and 0 <= y < 4
    assert ds.mask(3).shape == (64, 64)
    assert ds.classes == ("circle", "square", "triangle", "cross")


def test_corrupt_cache_is_regenerated(isolated_dirs):
    ds = load_dataset("shapes", split="val")
    path = shapes.cache_path(isolated_dirs["data"], "val", 64)
    path.write_bytes(b"not an npz")
    again = load_dataset("shapes", split="val")
    np.testing.assert_array_equal(ds.images, again.images)
    with np.load(path) as z:  # and the cache was rewritten
        assert z["images"].shape[0] == len(ds)


def test_splits_do_not_share_images():
    val = load_dataset("shapes", split="val")
    test = load_dataset("shapes", split="test")
    vh = {v.tobytes() for v in val.images[:200]}
    assert not any(t.tobytes() in vh for t in test.images[:200])


def test_unknown_dataset_and_split():
    from core import UnknownNameError

    with pytest.raises(UnknownNameError, match="Available: .*shapes"):
        load_dataset("nope")
    with pytest.raises(UnknownNameError, match="Unknown split 'holdout': use one of train, val, test"):
        load_dataset("shapes", split="holdout")
    with pytest.raises(IndexError):
        load_dataset("shapes", split="val")[10_000]
