"""Session-state / widget keys, declared once."""

DATASET = "dataset"
MODEL = "model"
IMAGE_INDEX = "image_index"
SPLIT = "split"
METHODS = "methods"
TARGET = "target"
ALPHA = "alpha"
COLOURS = "colours"
SHOW_MASK = "show_mask"
LIME_SHOWN = "lime_shown"
DL_FIGURE = "download_figure"
CANCEL = "cancel"
RESUME = "resume"
CANCELLED = "cancelled_request"  # the request whose computation the user cancelled
DL_REPORT = "download_report"
TRAIN_ARCH = "train_arch"
TRAIN_EPOCHS = "train_epochs"
TRAIN_BUTTON = "train"
TRAIN_JOB = "explain.train_job"  # the training this session started from Explain
RANDOM_BUTTON = "random_image"


def param_key(method: str, name: str) -> str:
    return f"param.{method}.{name}"


def gallery_key(i: int) -> str:
    return f"gallery.{i}"

# Compare page
CMP_MODE = "cmp_mode"
CMP_INDICES = "cmp_indices"
CMP_COUNT = "cmp_count"
CMP_SEED = "cmp_seed"
CMP_METHODS = "cmp_methods"
CMP_TARGET = "cmp_target"
CMP_COLOURS = "cmp_colours"
CMP_SCALE = "cmp_scale"
CMP_ALPHA = "cmp_alpha"
CMP_TOPK = "cmp_topk"
CMP_DL_PNG = "cmp_download_png"
CMP_DL_NPZ = "cmp_download_npz"
CMP_CANCEL = "cmp_cancel"
CMP_RESUME = "cmp_resume"
CMP_CANCELLED = "cmp_cancelled_request"

# Data
DATA_DATASET = "data_dataset"
DATA_SIZE = "data_size"
DATA_ROOTS = "data_roots"  # {dataset: folder} chosen in this session
DATA_PATH = "data_path"
PATH_FORM = "data_path_form"
DL_SIZE = "download_size"
DL_BUTTON = "download"
IMAGE_SOURCE = "image_source"
UPLOAD = "upload"


def set_value(key: str, value) -> None:
    """A widget callback that stores ``value`` under ``key`` (e.g. which request the user cancelled)."""
    import streamlit as st

    st.session_state[key] = value


def restore(key: str, default=None) -> None:
    """Call before drawing the widget ``key``: if Streamlit dropped its value (a run that did not draw it, e.g. the
    Upload view before an image is chosen, or another page), put back the value :func:`remember` kept, else
    ``default`` (when given)."""
    import streamlit as st

    if key not in st.session_state:
        kept = st.session_state.get(f"_kept.{key}", default)
        if kept is not None:
            st.session_state[key] = kept


def remember(key: str) -> None:
    """Call after drawing the widget ``key``: keep its value under a key that is not a widget's (never dropped)."""
    import streamlit as st

    if key in st.session_state:
        st.session_state[f"_kept.{key}"] = st.session_state[key]
