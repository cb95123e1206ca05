"""Session-state / widget keys, declared once."""

DATASET = "dataset"
MODEL = "model"
IMAGE_INDEX = "image_index"
SPLIT = "split"
METHODS = "methods"
TARGET = "target"
ALPHA = "alpha"
TRAIN_ARCH = "train_arch"
TRAIN_EPOCHS = "train_epochs"
TRAIN_BUTTON = "train"
RANDOM_BUTTON = "random_image"


def param_key(method: str, name: str) -> str:
    return f"param.{method}.{name}"


def gallery_key(i: int) -> str:
    return f"gallery.{i}"
