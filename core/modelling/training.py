"""Training and evaluation, usable from the CLI, the app and notebooks.

Progress is reported through a callback taking :class:`TrainProgress` (per step, and at the end of every epoch
with the epoch's train / val numbers), so the CLI can print a bar and the app can draw curves without this
module knowing about either. A :class:`~core.cancel.CancelToken` stops a run at its next step.

The model kept is the epoch that did best on the validation split. Saving is atomic (weights, card, test
predictions, metrics and out-of-distribution statistics are published together), so a cancelled or killed run
leaves either nothing or a complete model.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from core import config
from core.modelling.architectures import ARCHITECTURES, Classifier, build_model, freezable_layers
from core.cancel import CancelToken
from core.modelling.checkpoints import load_model, save_model
from core.modelling.cards import ModelCard, validate_model_id
from core.datasets import load_dataset
from core.eta import UnitClock
from core.errors import Cancelled, CheckpointError, DatasetError, TrainingError
from core.modelling.classification import classification_metrics

log = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("onecycle", "cosine", "constant")
FLIPS = ("none", "horizontal", "both")
CLASS_WEIGHTING = ("auto", "on", "off")
#: class weighting "auto" turns on when the most frequent class outnumbers the rarest by this much
IMBALANCE_RATIO = 1.5

#: settings every dataset starts from; RECIPES override them per dataset (the Train page starts from the same)
DEFAULTS: dict[str, Any] = dict(arch="small_cnn", epochs=8, batch_size=64, lr=3e-3, weight_decay=5e-4,
                                optimizer="adamw", schedule="onecycle", flip="both", rotation=0.0, shift=0.0,
                                color_jitter=0.0, class_weighting="auto", freeze=(), pretrained=False)
RECIPES: dict[str, dict[str, Any]] = {
    # X-rays: no vertical flips, small rotations and shifts, contrast jitter; 28 px as in the MedMNIST benchmark
    "pneumoniamnist": dict(size=28, epochs=30, batch_size=128, lr=2e-3, flip="horizontal", rotation=10.0, shift=0.08,
                           color_jitter=0.15),
    "pathmnist": dict(size=28, epochs=20, flip="both", rotation=15.0, color_jitter=0.1),
}
#: the published PathMNIST recipe (ResNet-18 from ImageNet weights at 224 px), for users with the data and a GPU
PATHMNIST_IMAGENET_RECIPE = dict(dataset="pathmnist", arch="resnet18", size=224, pretrained=True, optimizer="adam",
                                 lr=1e-4, schedule="cosine", epochs=20, flip="both", rotation=15.0, color_jitter=0.1,
                                 freeze=("conv1", "bn1", "layer1", "layer2"), batch_size=64)
#: named recipes a user can train by name (``train --preset NAME``)
PRESETS: dict[str, dict[str, Any]] = {"pathmnist-imagenet": PATHMNIST_IMAGENET_RECIPE}


def recipe(dataset: str) -> dict[str, Any]:
    """The default settings for ``dataset``."""
    return {**DEFAULTS, **RECIPES.get(dataset, {})}


@dataclass
class TrainConfig:
    """Training settings. ``None`` means "the dataset's recipe default" (see :func:`recipe`)."""

    dataset: str = "shapes"
    arch: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    optimizer: str | None = None  # adamw | adam | sgd (momentum 0.9, Nesterov)
    schedule: str | None = None  # onecycle | cosine | constant
    flip: str | None = None  # none | horizontal | both
    rotation: float | None = None  # max degrees of random rotation
    shift: float | None = None  # max random shift, as a fraction of the image side
    color_jitter: float | None = None  # max relative change of brightness and contrast (and saturation for RGB)
    class_weighting: str | None = None  # auto (on when imbalanced) | on | off
    freeze: tuple[str, ...] | None = None  # layers of the network kept fixed (names from freezable_layers)
    pretrained: bool | None = None  # start from torchvision's ImageNet weights
    weights_file: str | None = None  # ImageNet weights file (default: torchvision's cache)
    seed: int = 0
    size: int | None = None  # input size (default: the recipe's, else the dataset's)
    data_root: str | None = None
    model_id: str | None = None  # default: the first free "<dataset>-<arch>[-N]"
    max_train: int | None = None  # use only the first N training images (quick runs / tests)
    val_fraction: float = 0.1  # held out of train when the dataset has no validation split

    def resolved(self) -> "TrainConfig":
        """A copy with every ``None`` setting filled from the dataset's recipe, then checked."""
        r = recipe(self.dataset)
        filled = replace(self, **{f.name: r[f.name] for f in fields(self) if getattr(self, f.name) is None and f.name in r})
        filled.freeze = tuple(filled.freeze or ())
        return filled.validate()

    def validate(self) -> "TrainConfig":
        """Every setting checked before any work starts (the CLI and the UI both build a TrainConfig)."""
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise TrainingError(message)

        def whole(v) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        def number(v) -> bool:
            return isinstance(v, (int, float, np.floating)) and not isinstance(v, bool) and math.isfinite(v)

        def one_of(name: str, choices: tuple) -> None:
            v = getattr(self, name)
            need(v is None or v in choices, f"{name.replace('_', ' ')} must be one of {', '.join(choices)}, got {v!r}")

        need(self.epochs is None or (whole(self.epochs) and 1 <= self.epochs <= 10_000),
             f"epochs must be a whole number in 1..10000, got {self.epochs!r}")
        need(self.batch_size is None or (whole(self.batch_size) and 1 <= self.batch_size <= 65_536),
             f"batch size must be a whole number in 1..65536, got {self.batch_size!r}")
        need(self.lr is None or (number(self.lr) and 0 < self.lr <= 10),
             f"learning rate must be a finite number in (0, 10], got {self.lr!r}")
        need(self.weight_decay is None or (number(self.weight_decay) and self.weight_decay >= 0),
             f"weight decay must be a finite number >= 0, got {self.weight_decay!r}")
        need(whole(self.seed) and 0 <= self.seed < 2**32, f"seed must be a whole number in 0..2**32-1, got {self.seed!r}")
        need(self.size is None or (whole(self.size) and 8 <= self.size <= 1024),
             f"image size must be a whole number of pixels in 8..1024, got {self.size!r}")
        need(self.max_train is None or (whole(self.max_train) and self.max_train >= 1),
             f"max train images must be at least 1 (leave it out to use all), got {self.max_train!r}")
        need(self.rotation is None or (number(self.rotation) and 0 <= self.rotation <= 180),
             f"rotation must be a number of degrees in 0..180, got {self.rotation!r}")
        need(self.shift is None or (number(self.shift) and 0 <= self.shift <= 0.5),
             f"shift must be a fraction of the image side in 0..0.5, got {self.shift!r}")
        need(self.color_jitter is None or (number(self.color_jitter) and 0 <= self.color_jitter <= 1),
             f"colour jitter must be in 0..1, got {self.color_jitter!r}")
        need(number(self.val_fraction) and 0 < self.val_fraction < 1,
             f"validation fraction must be in (0, 1), got {self.val_fraction!r}")
        one_of("optimizer", OPTIMIZERS)
        one_of("schedule", SCHEDULES)
        one_of("flip", FLIPS)
        one_of("class_weighting", CLASS_WEIGHTING)
        need(self.freeze is None or (isinstance(self.freeze, (list, tuple)) and all(isinstance(x, str) for x in self.freeze)),
             f"layers to freeze must be a list of layer names, got {self.freeze!r}")
        if self.arch is not None:
            ARCHITECTURES.get(self.arch)  # an unknown name is an UnknownNameError listing the known ones
        if self.pretrained and self.arch is not None:
            from core.modelling.pretrained import has_imagenet

            need(has_imagenet(self.arch), f"architecture {self.arch!r} has no ImageNet weights; those that do: "
                 + ", ".join(a for a in ARCHITECTURES.names() if ARCHITECTURES.get(a).imagenet))
        return self


def _default_size(dataset: str) -> int:
    from core.datasets import dataset_info

    return dataset_info(dataset).image_size


def preflight(cfg: TrainConfig) -> TrainConfig:
    """Every check that needs no data: the settings, the model id, the ImageNet weights file. The UI runs it before
    starting a background run, so a bad setting is a message at once, not a failed run later."""
    r = cfg.resolved()
    if r.model_id is not None:
        validate_model_id(r.model_id)
    lo, hi = ARCHITECTURES.get(r.arch).sizes
    if lo == hi and (r.size or _default_size(r.dataset)) != lo:
        raise TrainingError(f"{r.arch} takes {lo} px images only (its position embeddings are for that size); set the "
                            f"image size to {lo}")
    if r.pretrained:
        from core.modelling.pretrained import find_weights

        find_weights(r.arch, r.weights_file)
    return r


@dataclass
class TrainProgress:
    epoch: int
    epochs: int
    step: int  # global step, 1-based
    total_steps: int
    loss: float
    message: str = ""
    seconds_left: float | None = None
    history: list[dict[str, Any]] | None = None  # set at the end of each epoch: every epoch so far
    warning: str | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / max(1, self.total_steps))


ProgressFn = Callable[[TrainProgress], None]


def unique_model_id(base: str, models_dir: str | Path | None = None) -> str:
    """``base`` when no model has that id yet, else ``base-2``, ``base-3``... (any number of models per dataset)."""
    root = Path(models_dir) if models_dir else config.models_dir()
    validate_model_id(base)
    if not (root / base).exists():
        return base
    n = 2
    while (root / f"{base}-{n}").exists():
        n += 1
    return f"{base}-{n}"


# -- augmentation (batched, on the training device) ---------------------------------------------------------------
def augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random flips, rotation + shift (one affine warp per image) and brightness / contrast (/ saturation for RGB)
    jitter, for a batch in [0, 1]."""
    n = len(x)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(n, generator=gen)).to(x.device)

    def coin() -> torch.Tensor:
        return (torch.rand(n, generator=gen) < 0.5).to(x.device).view(-1, 1, 1, 1)

    if cfg.flip in ("horizontal", "both"):
        x = torch.where(coin(), x.flip(-1), x)
    if cfg.flip == "both":
        x = torch.where(coin(), x.flip(-2), x)
    if cfg.rotation or cfg.shift:
        angle = uniform(-cfg.rotation, cfg.rotation) * (math.pi / 180)
        tx, ty = uniform(-2 * cfg.shift, 2 * cfg.shift), uniform(-2 * cfg.shift, 2 * cfg.shift)  # grid units: 2 = side
        cos, sin = angle.cos(), angle.sin()
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if cfg.color_jitter:
        j = cfg.color_jitter
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * uniform(1 - j, 1 + j).view(-1, 1, 1, 1) + mean  # contrast
        x = x * uniform(1 - j, 1 + j).view(-1, 1, 1, 1)  # brightness
        if x.shape[1] == 3:  # saturation means nothing for one channel
            grey = x.mean(dim=1, keepdim=True)
            x = grey + (x - grey) * uniform(1 - j, 1 + j).view(-1, 1, 1, 1)
        x = x.clamp(0, 1)
    return x


# -- pieces of a run ---------------------------------------------------------------------------------------------
def _split_val(train_ds, cfg: TrainConfig):
    """The dataset's validation split, or ``val_fraction`` of train held out (stratified by nothing, seeded)."""
    try:
        val = load_dataset(cfg.dataset, "val", size=cfg.size, root=cfg.data_root)
        if len(val) > 0:
            return train_ds, val, "the dataset's validation split"
    except DatasetError:
        pass
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(len(train_ds))
    k = max(1, int(round(len(train_ds) * cfg.val_fraction)))
    if len(train_ds) - k < 2:
        raise TrainingError(f"dataset {cfg.dataset!r} has too few training images to hold out a validation split")
    take = lambda idx, split: type(train_ds)(info=train_ds.info, split=split, images=train_ds.images[np.sort(idx)],  # noqa: E731
                                            labels=train_ds.labels[np.sort(idx)], extras=train_ds.extras)
    return take(perm[k:], "train"), take(perm[:k], "val"), f"{k} training images held out (no validation split)"


def _class_weights(y: torch.Tensor, k: int, setting: str) -> tuple[torch.Tensor | None, str]:
    counts = torch.bincount(y, minlength=k).float()
    present = counts[counts > 0]
    ratio = float(present.max() / present.min())
    on = setting == "on" or (setting == "auto" and ratio >= IMBALANCE_RATIO)
    why = (f"class weighting {'on' if on else 'off'}"
           + (f" (auto: the largest class has {ratio:.1f}x the images of the smallest)" if setting == "auto" else ""))
    if not on:
        return None, why
    return counts.sum() / (k * counts.clamp_min(1)), why


def _optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, total: int):
    if cfg.schedule == "onecycle" and total >= 20:
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.2)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total))
    # constant; and a one-cycle schedule needs steps to warm up and anneal: tiny datasets keep a constant rate
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)


def _freeze(model: Classifier, names: tuple[str, ...]) -> list[nn.Module]:
    known = freezable_layers(model)
    bad = [n for n in names if n not in known]
    if bad:
        raise TrainingError(f"cannot freeze {', '.join(bad)}: layers of this architecture are {', '.join(known)}")
    frozen = []
    for n in names:
        m = model.net.get_submodule(n)
        for p in m.parameters():
            p.requires_grad_(False)
        frozen.append(m)
    if not any(p.requires_grad for p in model.parameters()):
        raise TrainingError("every layer is frozen: nothing would train")
    return frozen


def _evaluate(model: nn.Module, ds) -> tuple[float, np.ndarray]:
    """Mean cross-entropy (unweighted, comparable across settings) and class probabilities over a split, through
    the one prediction path."""
    from core.modelling.prediction import predict_proba

    proba = predict_proba(model, ds)
    nll = -np.log(np.clip(proba[np.arange(len(ds)), ds.labels], 1e-12, None))
    return float(nll.mean()), proba


#: train steps timed after the first (which carries the warm-up) before the time left is shown: one step is too
#: short to time on its own
SETTLE_STEPS = 3
#: seconds the timing of each evaluation pass before training may take (:func:`_evaluation_rates`)
RATE_BUDGET = 1.0


def _evaluation_rates(model: nn.Module, ds) -> tuple[float, float]:
    """Seconds per image of the two passes the evaluations make, on images of ``ds`` at the batch those passes use
    (:data:`core.modelling.prediction.BATCH_SIZE`; doubled up to it within :data:`RATE_BUDGET`, see
    :func:`core.eta.seconds_per_item`: 16 images gave half the time per image of a batch of 256): a prediction pass
    (validation, the test predictions) and a feature pass (the out-of-distribution statistics of
    :mod:`core.modelling.ood`). Eval mode, no gradient, no random draw: the training that follows is the same."""
    from core.eta import seconds_per_item
    from core.modelling import ood
    from core.modelling.prediction import BATCH_SIZE, predict_proba

    x = ds.batch(np.arange(min(BATCH_SIZE, len(ds))))
    predict = seconds_per_item(lambda n: predict_proba(model, x[:n]), len(x), budget=RATE_BUDGET, repeats=0)
    try:
        features = seconds_per_item(lambda n: ood.features(model, x[:n]), len(x), budget=RATE_BUDGET, repeats=0)
    except ValueError:  # a model without the layers the statistics read: the evaluation skips them
        features = 0.0
    return predict, features


def _final_evaluation_seconds(rates: tuple[float, float], n_train: int, n_val: int, n_test: int) -> float:
    """The evaluation after the last epoch (:func:`core.modelling.evaluation.compute`): the test split predicted,
    and the feature pass over the training images the statistics are fitted on, the validation and the test split."""
    from core.modelling.ood import MAX_FIT_IMAGES

    predict, features = rates
    return n_test * predict + (min(n_train, MAX_FIT_IMAGES) + n_val + n_test) * features


def _score(m: dict[str, Any]) -> tuple:
    """How epochs are ranked on val: balanced accuracy, then ROC AUC (both higher is better)."""
    return (round(m["balanced_accuracy"], 6), m["roc_auc"] if m["roc_auc"] is not None else 0.0)


def train(cfg: TrainConfig, progress: ProgressFn | None = None, models_dir: str | Path | None = None,
          cancel: CancelToken | None = None,
          keep_best_on_cancel: bool | Callable[[], bool] = False) -> tuple[Classifier, ModelCard, Path]:
    """Train a model, keep its best epoch on val, evaluate it on the test split, save it, and return
    ``(model, card, path)``.

    Cancelled through ``cancel``: raises :class:`Cancelled` and saves nothing, unless ``keep_best_on_cancel``
    and at least one epoch finished, in which case the best epoch so far is saved, labelled as such in its card
    (``keep_best_on_cancel`` may be a callable, asked when the cancel arrives).
    """
    from core.modelling import evaluation
    from core.modelling.tracking import Tracker

    cfg = preflight(cfg)
    root = Path(models_dir) if models_dir else config.models_dir()
    model_id = validate_model_id(cfg.model_id) if cfg.model_id else unique_model_id(f"{cfg.dataset}-{cfg.arch}", root)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = config.pick_device()
    notify = progress or (lambda p: None)
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        notify(TrainProgress(0, cfg.epochs, 0, 1, math.nan, f"warning: {message}", warning=message))

    def check_cancel(epoch: int, step: int) -> None:
        if cancel is not None and cancel.cancelled:
            raise Cancelled(f"training cancelled in epoch {epoch} of {cfg.epochs} (step {step}); nothing was saved")

    notify(TrainProgress(0, cfg.epochs, 0, 1, math.nan, "loading data"))
    train_ds = load_dataset(cfg.dataset, "train", size=cfg.size, root=cfg.data_root)
    test_ds = load_dataset(cfg.dataset, "test", size=cfg.size, root=cfg.data_root)
    if len(train_ds) == 0:
        raise TrainingError(f"dataset {cfg.dataset!r} has no training images")
    if len(test_ds) == 0:  # found before the epochs, not after them with nothing saved
        raise TrainingError(f"dataset {cfg.dataset!r} has no test images to evaluate the model on")
    if cfg.max_train and cfg.max_train < len(train_ds):
        train_ds = type(train_ds)(info=train_ds.info, split="train", images=train_ds.images[:cfg.max_train],
                                  labels=train_ds.labels[:cfg.max_train], extras=train_ds.extras)
    train_ds, val_ds, val_source = _split_val(train_ds, cfg)
    n_train = len(train_ds)
    # Images stay uint8 and are converted batch by batch: a float copy of a large split would not fit.
    y_train = torch.from_numpy(train_ds.labels)
    classes = list(train_ds.classes)
    size, channels = train_ds.images.shape[1], train_ds.images.shape[3]
    if len(set(y_train.tolist())) < 2:
        raise TrainingError(f"the training split of {cfg.dataset!r} has images of one class only")
    for w in train_ds.extras.get("warnings", []):
        warn(w)
    lo, hi = ARCHITECTURES.get(cfg.arch).sizes
    if not lo <= size <= hi:
        warn(f"{cfg.arch} is meant for {lo}-{hi} px inputs, these are {size} px (CAM maps may be very coarse)")

    notes: list[str] = []
    if cfg.pretrained:
        from core.modelling.pretrained import IMAGENET_MEAN, IMAGENET_STD, init_from_imagenet

        mean = IMAGENET_MEAN if channels == 3 else [float(np.mean(IMAGENET_MEAN))]
        std = IMAGENET_STD if channels == 3 else [float(np.mean(IMAGENET_STD))]
        model = build_model(cfg.arch, len(classes), channels, mean, std)
        notes += init_from_imagenet(model, cfg.arch, cfg.weights_file)
        notes.append("ImageNet normalisation" + (" (the mean of its three channels for grey images)" if channels == 1 else ""))
    else:
        mean, std = train_ds.channel_stats()
        model = build_model(cfg.arch, len(classes), channels, mean, std)
    frozen = _freeze(model, cfg.freeze)
    # on the CPU, where the final evaluation runs (below); not part of the training's time
    rates = _evaluation_rates(model, val_ds if len(val_ds) else train_ds)
    model.to(device)
    opt = _optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    sched = _scheduler(cfg, opt, total)
    weight, weighting = _class_weights(y_train, len(classes), cfg.class_weighting)
    notes.append(weighting)
    loss_fn = nn.CrossEntropyLoss(weight=None if weight is None else weight.to(device))

    params = {k: v for k, v in asdict(cfg).items() if k not in ("data_root", "model_id")}
    tracker = Tracker(warn)
    tracker.start(cfg.dataset, model_id, {**params, "size": int(size), "n_train": n_train, "n_val": len(val_ds),
                                          "device": str(device), "class_weighting_applied": weight is not None})

    t0 = time.perf_counter()
    clock = UnitClock(settle=SETTLE_STEPS)  # train steps, from the first one done (it carries the warm-up)
    gap_seconds: float | None = None  # the last time between two epochs' steps (validation and bookkeeping)
    paused = 0.0  # all the time between epochs' steps so far: the step clock runs without it

    def evaluation_left() -> float:
        return _final_evaluation_seconds(rates, n_train, len(val_ds), len(test_ds))

    def left(step: int) -> float | None:
        """Steps left at their measured rate (the time between epochs left out of it), plus the time between the
        epochs still to end (the last one measured; before the first, its validation pass from the measured seconds
        per image, see :func:`_evaluation_rates`) and the final evaluation."""
        train = clock.left(step, total, now=time.monotonic() - paused)
        if train is None:
            return None
        gap = gap_seconds if gap_seconds is not None else len(val_ds) * rates[0]
        return train + gap * (cfg.epochs - len(history)) + evaluation_left()

    step = 0
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    cancelled: Cancelled | None = None
    try:
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            for m in frozen:
                m.eval()  # frozen batch norms keep their statistics
            perm = rng.permutation(n_train)
            run_loss, run_right = 0.0, 0
            for b in range(steps_per_epoch):
                check_cancel(epoch, step)
                idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                xb = augment(train_ds.batch(idx).to(device, non_blocking=True), cfg, gen)
                yb = y_train[idx].to(device, non_blocking=True)
                out = model(xb)
                loss = loss_fn(out, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                run_loss += loss.item() * len(idx)
                run_right += int((out.argmax(1) == yb).sum())
                notify(TrainProgress(epoch, cfg.epochs, step, total, loss.item(), f"epoch {epoch}/{cfg.epochs}",
                                     seconds_left=left(step)))
            t_val = time.monotonic()
            val_loss, val_proba = _evaluate(model, val_ds)
            vm = classification_metrics(val_ds.labels, val_proba, classes)
            record = {"epoch": epoch, "train_loss": run_loss / n_train, "train_accuracy": run_right / n_train,
                      "val_loss": val_loss, "val_accuracy": vm["accuracy"], "val_balanced_accuracy": vm["balanced_accuracy"],
                      "val_roc_auc": vm["roc_auc"], "seconds": round(time.perf_counter() - t0, 2)}
            history.append(record)
            if best is None or _score(vm) > _score(best["val"]):
                best = {"epoch": epoch, "val": vm, "state": copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})}
            record["best_epoch"] = best["epoch"]
            tracker.metrics({k: v for k, v in record.items() if k not in ("epoch", "best_epoch")}, step=epoch)
            gap_seconds = time.monotonic() - t_val
            paused += gap_seconds
            notify(TrainProgress(epoch, cfg.epochs, step, total, record["train_loss"], f"epoch {epoch}/{cfg.epochs} done",
                                 seconds_left=left(step), history=list(history)))
    except Cancelled as exc:
        cancelled = exc
        keep = keep_best_on_cancel() if callable(keep_best_on_cancel) else keep_best_on_cancel
        if not (keep and best is not None):
            tracker.finish("KILLED", {"outcome": "cancelled, nothing saved"})
            raise
    train_seconds = time.perf_counter() - t0
    assert best is not None
    model.load_state_dict(best["state"])
    model.eval()

    notify(TrainProgress(len(history), cfg.epochs, step, total, math.nan,
                         f"evaluating on the test split ({len(test_ds):,} images: metrics, calibration, "
                         "out-of-distribution statistics)", seconds_left=evaluation_left()))
    status = "complete"
    if cancelled is not None:
        status = (f"cancelled during epoch {len(history) + 1} of {cfg.epochs}: the best epoch so far "
                  f"({best['epoch']}) was kept")
    card = ModelCard(
        id=model_id, dataset=cfg.dataset, arch=cfg.arch, classes=classes, input_size=int(size), channels=int(channels),
        mean=[float(v) for v in mean], std=[float(v) for v in std], target_layer=model.target_layer,
        training={
            **params,
            "freeze": list(cfg.freeze),
            "size": int(size),
            "n_train": int(n_train),
            "n_val": int(len(val_ds)),
            "validation": val_source,
            "best_epoch": best["epoch"],
            "epochs_run": len(history),
            "status": status,
            "notes": notes,
            "seconds": round(train_seconds, 1),
            "device": str(device),
            "torch": torch.__version__,
            "history": history,
            "tracking": {"uri": tracker.uri, "run_id": tracker.run_id} if tracker.run_id and not tracker.error else {},
        },
        metrics={},
        dataset_options={
            "size": int(size),
            **{k: train_ds.extras[k] for k in ("layout", "split_seed", "split_fractions") if k in train_ds.extras},
            # absolute: every face finds the files from any working folder (core.modelling.data_roots.locate)
            **({"path": str(Path(train_ds.extras["path"]).resolve())} if "path" in train_ds.extras else {}),
            "skipped_files": len(train_ds.extras.get("skipped", [])) + len(test_ds.extras.get("skipped", [])),
            "warnings": warnings,
        },
    )
    model.cpu()
    results = evaluation.compute(model, card, test_ds, train_ds, val_ds)
    notify(TrainProgress(len(history), cfg.epochs, step, total, math.nan, "saving the model", seconds_left=0.0))
    card.metrics = results.metrics
    path = save_model(model, card, root, extra_files=results.files)
    model.to(device).eval()
    tracker.metrics({f"test_{k}": v for k, v in card.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    tracker.artifact_text(json.dumps(card.to_dict(), indent=2), "model_card.json")
    tracker.artifact_figure(evaluation.confusion_figure(card), "confusion_matrix.png")
    tracker.finish("FINISHED", {"outcome": status, "model_path": str(path)})
    return model, card, path


def ensure_demo_model(progress: ProgressFn | None = None, models_dir: str | Path | None = None) -> Path:
    """Return the demo model's folder, training it first if it does not exist yet."""
    root = Path(models_dir) if models_dir else config.models_dir()
    path = root / config.DEMO_MODEL_ID
    if (path / "card.json").is_file():
        try:
            model, _ = load_model(path)  # card checked field by field, weights digest-checked and loaded
        except CheckpointError as exc:  # a corrupt demo is retrained, not announced as ready
            logging.getLogger(__name__).warning("demo model unusable (%s): training it again", exc)
        else:
            if not (path / "ood.npz").is_file():  # a demo trained before saved evaluations existed
                from core.errors import XaiError
                from core.modelling.evaluation import load_or_compute

                try:
                    load_or_compute(path, model)
                except XaiError as exc:  # the model is sound; the pages compute its evaluation when they can
                    log.warning("demo model %s not evaluated: %s", path, exc)
            return path
    _, _, path = train(TrainConfig(model_id=config.DEMO_MODEL_ID), progress, root)
    return path


def import_what_training_imports() -> None:
    """Import, in the calling thread, the modules a training imports on its way (the evaluation, MLflow and what it
    loads, matplotlib for the confusion figure). A training started in a background thread beside a Streamlit
    script run would otherwise compile modules while Streamlit parses a page, and CPython 3.11's AST construction
    is not safe across threads (python/cpython#106905, "AST constructor recursion depth mismatch")."""
    import matplotlib.figure  # noqa: F401
    import mlflow.entities  # noqa: F401
    import mlflow.tracking  # noqa: F401
    import sklearn.metrics  # noqa: F401

    from core.modelling import evaluation, ood, prediction, pretrained, tracking  # noqa: F401


class TrainingRun:
    """A training as a job's work (:mod:`core.jobs`): ``runner.submit(run, detail=run)``. It keeps what the pages
    draw while it runs (the latest progress, every epoch so far, warnings); :meth:`stop` cancels it, saving the best
    epoch so far when asked to."""

    def __init__(self, cfg: TrainConfig, models_dir: str | Path | None = None) -> None:
        self.cfg = preflight(cfg)  # a bad setting is refused here, where the run is asked for, not in the thread
        import_what_training_imports()
        self.models_dir = models_dir
        self.latest: TrainProgress | None = None
        self.history: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.keep_best = False

    def __call__(self, progress: Callable[..., None], cancel: CancelToken) -> ModelCard:
        def on_progress(p: TrainProgress) -> None:
            self.latest = p
            if p.history is not None:
                self.history = p.history
            if p.warning:
                self.warnings.append(p.warning)
            progress(p.step, p.total_steps, p.message)

        _, card, _ = train(self.cfg, on_progress, self.models_dir, cancel=cancel,
                           keep_best_on_cancel=lambda: self.keep_best)
        return card
