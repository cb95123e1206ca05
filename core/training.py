"""Training and evaluation, usable from the CLI, the app and notebooks.

Progress is reported through a callback taking :class:`TrainProgress`, so the CLI can print a bar
and the app can drive ``st.progress`` without this module knowing about either.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from . import config
from .architectures import ARCHITECTURES, Classifier, build_model
from .checkpoints import ModelCard, load_model, save_model, validate_model_id
from .datasets import load_dataset
from .errors import CheckpointError, TrainingError
from .metrics import classification_metrics
from .prediction import predict_proba


@dataclass
class TrainConfig:
    dataset: str = "shapes"
    arch: str = "small_cnn"
    epochs: int = 8
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    seed: int = 0
    augment: bool = True  # random flips
    size: int | None = None  # input size (default: the dataset's)
    data_root: str | None = None
    model_id: str | None = None  # default: "<dataset>-<arch>"
    max_train: int | None = None  # use only the first N training images (quick runs / tests)
    balanced: bool = False  # weight the loss by inverse class frequency (imbalanced data, e.g. medical sets)

    def validate(self) -> "TrainConfig":
        """Every setting checked before any work starts (the CLI and the UI both build a TrainConfig)."""
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise TrainingError(message)

        def whole(v) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        need(whole(self.epochs) and 1 <= self.epochs <= 10_000, f"epochs must be a whole number in 1..10000, got {self.epochs!r}")
        need(whole(self.batch_size) and 1 <= self.batch_size <= 65_536,
             f"batch size must be a whole number in 1..65536, got {self.batch_size!r}")
        need(isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and 0 < self.lr <= 10,
             f"learning rate must be a finite number in (0, 10], got {self.lr!r}")
        need(isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay) and self.weight_decay >= 0,
             f"weight decay must be a finite number >= 0, got {self.weight_decay!r}")
        need(whole(self.seed) and 0 <= self.seed < 2**32, f"seed must be a whole number in 0..2**32-1, got {self.seed!r}")
        need(self.size is None or (whole(self.size) and 8 <= self.size <= 1024),
             f"image size must be a whole number of pixels in 8..1024, got {self.size!r}")
        need(self.max_train is None or (whole(self.max_train) and self.max_train >= 1),
             f"max train images must be at least 1 (leave it out to use all), got {self.max_train!r}")
        return self


@dataclass
class TrainProgress:
    epoch: int
    epochs: int
    step: int  # global step, 1-based
    total_steps: int
    loss: float
    message: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / max(1, self.total_steps))


ProgressFn = Callable[[TrainProgress], None]


def train(cfg: TrainConfig, progress: ProgressFn | None = None, models_dir: str | Path | None = None) -> tuple[Classifier, ModelCard, Path]:
    """Train a model, evaluate it on the test split, save it, and return ``(model, card, path)``."""
    cfg.validate()
    validate_model_id(cfg.model_id or f"{cfg.dataset}-{cfg.arch}")  # before any work, not after training
    ARCHITECTURES.get(cfg.arch)  # fail early on an unknown name
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = config.pick_device()
    notify = progress or (lambda p: None)

    notify(TrainProgress(0, cfg.epochs, 0, 1, math.nan, "loading data"))
    train_ds = load_dataset(cfg.dataset, "train", size=cfg.size, root=cfg.data_root)
    test_ds = load_dataset(cfg.dataset, "test", size=cfg.size, root=cfg.data_root)
    n_train = min(len(train_ds), cfg.max_train or len(train_ds))
    if n_train == 0:
        raise TrainingError(f"dataset {cfg.dataset!r} has no training images")
    if len(test_ds) == 0:  # found before the epochs, not after them with nothing saved
        raise TrainingError(f"dataset {cfg.dataset!r} has no test images to evaluate the model on")
    if cfg.max_train and cfg.max_train < len(train_ds):
        train_ds = type(train_ds)(info=train_ds.info, split="train", images=train_ds.images[:n_train],
                                  labels=train_ds.labels[:n_train], extras=train_ds.extras)
    # Images stay uint8 and are converted batch by batch: a float copy of a large split would not fit.
    y_train = torch.from_numpy(train_ds.labels)
    classes = list(train_ds.classes)
    size, channels = train_ds.images.shape[1], train_ds.images.shape[3]
    mean, std = train_ds.channel_stats()
    if len(set(y_train.tolist())) < 2:
        raise TrainingError(f"the training split of {cfg.dataset!r} has images of one class only")
    warnings = list(train_ds.extras.get("warnings", []))
    lo, hi = ARCHITECTURES.get(cfg.arch).sizes
    if not lo <= size <= hi:
        warnings.append(f"{cfg.arch} is meant for {lo}-{hi} px inputs, these are {size} px "
                        "(CAM maps may be very coarse)")
    for w in warnings:
        notify(TrainProgress(0, cfg.epochs, 0, 1, math.nan, f"warning: {w}"))

    model = build_model(cfg.arch, len(classes), channels, mean, std).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if total >= 20:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.2)
    else:  # a one-cycle schedule needs steps to warm up and anneal; tiny datasets keep a constant rate
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    weight = None
    if cfg.balanced:
        counts = torch.bincount(y_train, minlength=len(classes)).float()
        weight = (counts.sum() / (len(classes) * counts.clamp_min(1))).to(device)
    loss_fn = nn.CrossEntropyLoss(weight=weight)

    t0 = time.perf_counter()
    step = 0
    history = []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = rng.permutation(n_train)
        running = 0.0
        for b in range(steps_per_epoch):
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            xb, yb = train_ds.batch(idx), y_train[idx]
            if cfg.augment:
                flip = torch.from_numpy(rng.random(len(xb)) < 0.5)
                xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(-1), xb)
                flip = torch.from_numpy(rng.random(len(xb)) < 0.5)
                xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(-2), xb)
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            running += loss.item()
            notify(TrainProgress(epoch, cfg.epochs, step, total, loss.item(), f"epoch {epoch}/{cfg.epochs}"))
        history.append({"epoch": epoch, "loss": running / steps_per_epoch})
    train_seconds = time.perf_counter() - t0

    notify(TrainProgress(cfg.epochs, cfg.epochs, total, total, math.nan, "evaluating on the test split"))
    model.eval()
    metrics = classification_metrics(test_ds.labels, predict_proba(model, test_ds), classes)
    metrics["split"] = "test"

    card = ModelCard(
        id=cfg.model_id or f"{cfg.dataset}-{cfg.arch}",
        dataset=cfg.dataset,
        arch=cfg.arch,
        classes=classes,
        input_size=int(size),
        channels=int(channels),
        mean=mean,
        std=std,
        target_layer=model.target_layer,
        training={
            **{k: v for k, v in asdict(cfg).items() if k not in ("model_id", "data_root")},
            "n_train": int(n_train),
            "seconds": round(train_seconds, 1),
            "device": str(device),
            "torch": torch.__version__,
            "history": history,
        },
        metrics=metrics,
        dataset_options={
            "size": int(size),
            **{k: train_ds.extras[k] for k in ("path", "layout", "split_seed", "split_fractions") if k in train_ds.extras},
            "skipped_files": len(train_ds.extras.get("skipped", [])) + len(test_ds.extras.get("skipped", [])),
            "warnings": warnings,
        },
    )
    model.cpu()
    path = save_model(model, card, models_dir)
    model.to(device).eval()
    return model, card, path


def ensure_demo_model(progress: ProgressFn | None = None, models_dir: str | Path | None = None) -> Path:
    """Return the demo model's folder, training it first if it does not exist yet."""
    root = Path(models_dir) if models_dir else config.models_dir()
    path = root / config.DEMO_MODEL_ID
    if (path / "card.json").is_file():
        try:
            load_model(path)  # card checked field by field, weights digest-checked and loaded
            return path
        except CheckpointError as exc:  # a corrupt demo is retrained, not announced as ready
            logging.getLogger(__name__).warning("demo model unusable (%s): training it again", exc)
    _, _, path = train(TrainConfig(model_id=config.DEMO_MODEL_ID), progress, root)
    return path
