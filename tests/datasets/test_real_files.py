"""The real files in ../shared/data (see its README); skipped with a reason where they are absent."""
import pytest

from core import load_dataset
from tests.helpers import SHARED_DATA

NPZ = SHARED_DATA / "pneumoniamnist.npz"
SAMPLES = SHARED_DATA / "samples"


@pytest.mark.skipif(not NPZ.is_file(), reason=f"real PneumoniaMNIST file not found at {NPZ}")
def test_real_pneumoniamnist_file():
    test = load_dataset("pneumoniamnist", split="test", root=SHARED_DATA)
    val = load_dataset("pneumoniamnist", split="val", root=SHARED_DATA)
    train = load_dataset("pneumoniamnist", split="train", root=SHARED_DATA)
    assert test.classes == ("normal", "pneumonia")
    assert (len(train), len(val), len(test)) == (3882, 524, 624)
    assert test.info.image_size == 28 and test.info.channels == 1 and test.images.shape[1:] == (28, 28, 1)
    assert test.labels.tolist().count(0) == 234 and test.labels.tolist().count(1) == 390
    # its MD5 is not the official one: warned about, still loaded
    assert "differs from the official" in test.extras["warnings"][0]
    assert test.extras["official_size"] == 624


@pytest.mark.skipif(not (SAMPLES / "dogs_vs_wolves").is_dir(), reason=f"sample folders not found under {SAMPLES}")
def test_real_dogs_vs_wolves_folder():
    parts = [load_dataset("dogs_vs_wolves", split=s, root=SAMPLES / "dogs_vs_wolves") for s in ("train", "val", "test")]
    assert parts[0].classes == ("dogs", "wolves") and parts[0].extras["layout"] == "class folders"
    assert sum(len(p) for p in parts) == 12 and not parts[0].extras["skipped"]
    assert parts[0].images.shape[1:] == (128, 128, 3)
    # the generic 'folder' source and the data-dir form find the same images
    same = load_dataset("dogs_vs_wolves", split="test", root=SAMPLES)
    assert len(same) == len(parts[2])


@pytest.mark.skipif(not (SAMPLES / "pneumonia_224").is_dir(), reason=f"sample folders not found under {SAMPLES}")
def test_real_chest_xray_split_folders():
    train = load_dataset("chest_xray", split="train", root=SAMPLES / "pneumonia_224", size=64)
    test = load_dataset("chest_xray", split="test", root=SAMPLES / "pneumonia_224", size=64)
    assert train.extras["layout"] == "split folders" and train.classes == ("normal", "pneumonia")
    assert len(train) == 12 and len(test) == 12 and train.images.shape[1:] == (64, 64, 1)
