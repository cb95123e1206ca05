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
PRESENT = "presentation_mode"  # Explain: the sidebar hidden, the maps as large as the screen allows


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
FOLDER_PATH = "folder_path"  # Explain's Folder image source (photos-only datasets)
FOLDER_INDEX = "folder_index"
FOLDER_RANDOM = "folder_random"

# Import page
IMP_HOW = "imp_how"  # a path on the server or an upload
IMP_PATH = "imp_path"
IMP_UPLOAD = "imp_upload"
IMP_READ = "imp_read"
IMP_APPLY = "imp_apply"
IMP_ACTION = "imp.action"  # what a button drawn below the form asked for ("apply"), done before the form is drawn
IMP_DRAFT = "imp.draft"  # the Draft (it holds a torch module): this session's only
IMP_SOURCE = "imp.source"  # what the draft was read from: {"name", "path", "upload"}
IMP_GIVEN = "imp.given"  # the settings the user gave for the draft, as typed
IMP_PREFILL = "imp.prefill"  # a new draft's values, put in the form's fields before they are drawn
IMP_CHECK = "imp.check"  # the check's result for the draft
IMP_CHECK_ON = "imp_check_on"
IMP_CHECK_DATASET = "imp_check_dataset"
IMP_CHECK_N = "imp_check_n"
IMP_CHECK_FOLDER = "imp_check_folder"
IMP_CHECK_UPLOADS = "imp_check_uploads"
IMP_CHECK_RUN = "imp_check_run"
IMP_REPLACE = "imp_replace"
IMP_SAVE = "imp_save"
IMP_SAVED = "imp.saved"  # {"id", "path", "dataset"} of the model this session saved from the draft


def imp_field(name: str) -> str:
    """The Import page's form field of the import setting ``name``."""
    return f"imp.field.{name}"


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
