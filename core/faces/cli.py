"""Command line: ``python -m core {train,explain,explain-split,ensure-demo,list,...}``.

Examples::

    python -m core train --dataset shapes --arch small_cnn --epochs 8
    python -m core explain --model models/shapes-small_cnn --split test --index 7 \\
        --methods grad_cam,integrated_gradients,saliency --out out/7 --param integrated_gradients.n_steps=128
    python -m core explain --model models/shapes-small_cnn --indices 0-63 --methods grad_cam --out out/page
    python -m core explain-split --model shapes-small_cnn --split test --methods grad_cam,saliency --out out/run [--ray]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from core import config
from core.datasets.registry import SPLITS
from core.errors import DatasetError, XaiError


def _tqdm_progress(desc: str):
    """A training's progress on the terminal: a line per stage before and after the steps (loading data, evaluating,
    saving), a bar with the loss during them; nothing sits at 100 % without saying what it is doing."""
    from tqdm import tqdm

    bar, closed = None, False

    def update(p) -> None:
        nonlocal bar, closed
        if closed or (bar is None and p.total_steps <= 1) or p.message.startswith(("evaluating", "saving")):
            if bar is not None and not closed:
                bar.n = p.step
                bar.close()
                closed = True
            print(f"{desc}: {p.message}…", file=sys.stderr, flush=True)
            return
        if bar is None:
            bar = tqdm(total=p.total_steps, desc=desc, unit="step", file=sys.stderr)
        bar.n = p.step
        if p.loss == p.loss:  # not NaN
            bar.set_postfix_str(f"{p.message} loss={p.loss:.3f}", refresh=False)
        else:
            bar.set_postfix_str(p.message, refresh=False)
        bar.refresh()

    return update


def _parse_params(items: Sequence[str], owners: Sequence[str], what: str = "method") -> dict[str, dict[str, Any]]:
    """``OWNER.NAME=VALUE`` items (``--param`` for methods, ``--metric-param`` for metrics) by owner; the values are
    checked later against the owner's declared parameters."""
    flag = "--param" if what == "method" else f"--{what}-param"
    out: dict[str, dict[str, Any]] = {m: {} for m in owners}
    for item in items:
        key, sep, value = item.partition("=")
        owner, dot, name = key.partition(".")
        if not sep or not dot:
            raise XaiError(f"{flag} takes {what.upper()}.NAME=VALUE, got {item!r}")
        if owner not in out:
            raise XaiError(f"{flag} {item!r} names {what} {owner!r}, which is not in --{what}s")
        out[owner][name] = value
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from core.modelling.training import PRESETS, TrainConfig, train

    preset = dict(PRESETS[args.preset]) if args.preset else {}
    given = {k: getattr(args, k) for k in ("dataset", "arch", "epochs", "batch_size", "lr", "weight_decay", "optimizer",
                                           "schedule", "flip", "rotation", "shift", "color_jitter", "class_weighting",
                                           "pretrained", "weights_file", "seed", "size", "model_id", "max_train")
             if getattr(args, k) is not None}
    if args.freeze is not None:
        given["freeze"] = tuple(x.strip() for x in args.freeze.split(",") if x.strip())
    cfg = TrainConfig(**{**preset, **given}, data_root=args.data_dir)
    resolved = cfg.resolved()
    print("settings: " + ", ".join(f"{k}={getattr(resolved, k)}" for k in (
        "arch", "size", "epochs", "batch_size", "lr", "optimizer", "schedule", "flip", "rotation", "shift",
        "color_jitter", "class_weighting", "freeze", "pretrained")), file=sys.stderr)
    _, card, path = train(cfg, _tqdm_progress(f"train {resolved.arch} on {cfg.dataset}"), args.models_dir)
    for w in card.dataset_options.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    if card.dataset_options.get("skipped_files"):
        print(f"note: {card.dataset_options['skipped_files']} unreadable or non-image files were skipped", file=sys.stderr)
    for note in card.training.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    t = card.training
    best = t["history"][t["best_epoch"] - 1]
    print(f"saved {path} (best epoch on val: {t['best_epoch']} of {t['epochs_run']}, val accuracy "
          f"{best['val_accuracy']:.4f}; "
          f"{t['seconds']} s training on {t['device']})")
    _print_metrics(card)
    return 0


def _print_metrics(card) -> None:
    from core.modelling.trust import model_warnings

    m = card.metrics
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    print(f"test split, {m['n']} images:")
    print(f"  accuracy {fmt(m['accuracy'])} (chance {fmt(m['chance_accuracy'])})   balanced accuracy "
          f"{fmt(m['balanced_accuracy'])} (chance {fmt(m['chance_balanced_accuracy'])})   ROC AUC {fmt(m['roc_auc'])}")
    print(f"  macro precision {fmt(m['macro_precision'])}  recall {fmt(m['macro_recall'])}  F1 {fmt(m['macro_f1'])}   "
          f"weighted precision {fmt(m['weighted_precision'])}  recall {fmt(m['weighted_recall'])}  F1 {fmt(m['weighted_f1'])}"
          f"   ECE {fmt(m['ece'])}")
    width = max(len(c) for c in m["per_class"])
    print(f"  {'class':{width}s}  precision  recall     F1  support")
    for c, v in m["per_class"].items():
        print(f"  {c:{width}s}  {v['precision']:9.4f}  {v['recall']:6.4f} {v['f1-score']:6.4f}  {v['support']:7d}")
    if (m.get("ood") or {}).get("threshold") is not None:
        o = m["ood"]
        print(f"  out-of-distribution threshold {o['threshold']:.2f} (flags {o['val_flag_rate']:.1%} of val, "
              f"{o['test_flag_rate']:.1%} of test)")
    for w in model_warnings(card):
        print(f"WARNING: {w}", file=sys.stderr)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.modelling.evaluation import METRICS_FILE, PREDICTIONS_FILE, load_or_compute
    from core.modelling.checkpoints import resolve_model_path

    path = resolve_model_path(args.model)
    ev, card = load_or_compute(path, data_root=args.data_dir, progress=lambda m: print(f"{m}…", file=sys.stderr),
                               dataset=args.dataset)
    card.metrics = ev.metrics
    print(f"{card.id} on {ev.metrics.get('dataset', card.dataset)}, test split")
    if ev.metrics.get("class_mapping"):
        print(ev.metrics["class_mapping"])
    _print_metrics(card)
    print(f"wrote {path / METRICS_FILE} and {path / PREDICTIONS_FILE}")
    return 0


def _check_images(args: argparse.Namespace, card):
    """The check's images: --check-folder, --check-images, --check-dataset, else the model's own dataset if it is on
    this machine (``None``: nothing to check on)."""
    from core.importers import dataset_images, folder_images, upload_images
    from core.modelling.data_roots import locate

    if args.check_folder:
        return folder_images(card, args.check_folder, n=args.check_n)
    if args.check_images:
        blobs = []
        for f in args.check_images:
            try:
                blobs.append(Path(f).read_bytes())
            except OSError as exc:
                raise XaiError(f"cannot read {f}: {exc.strerror or exc}") from None
        return upload_images(card, blobs)
    name = args.check_dataset or (card.dataset if card.dataset != "imported" else None)
    if name is None:
        return None
    root, status = locate(name, given=args.data_dir)
    if not status.ready:
        if args.check_dataset:
            raise DatasetError(f"cannot check on {name}: {status.detail}")
        return None
    return dataset_images(card, name, args.check_split, root, n=args.check_n)


def cmd_import_model(args: argparse.Namespace) -> int:
    """Import a model made elsewhere: read it, draft its card (each value with where it came from), check it on
    images, save it to models/<id>/."""
    from core.explainers import get_method, hidden_methods, list_methods
    from core.importers import SETTINGS, check, inspect_source, save_imported

    given = {s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name) is not None}
    if args.classes_file:
        if "classes" in given:
            raise XaiError("give --classes or --classes-file, not both")
        try:
            given["classes"] = Path(args.classes_file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise XaiError(f"cannot read --classes-file {args.classes_file}: {exc}") from None
    print(f"reading {args.source}…", file=sys.stderr)
    draft = inspect_source(args.source, **given)
    card = draft.card
    print(f"{draft.format} model, {len(card.classes)} classes")
    for line in draft.lines():
        print(f"  {line}")
    for note in draft.notes:
        print(f"note: {note}")
    if card.training.get("class_mapping"):
        print(f"classes match dataset {card.dataset}: {card.training['class_mapping']}")
    elif card.dataset != "imported":
        print(f"classes match dataset {card.dataset}: listed with it (and with the imported models)")
    else:
        print("classes match no dataset here: listed under 'Imported models (any image)'")
    model = draft.model
    print("methods: " + ", ".join(list_methods(model)))
    for m, why in hidden_methods(model).items():
        print(f"  not offered: {get_method(m).title}: {why}")
    got = _check_images(args, card)
    if got is None:
        print("check: no images to run the model on; give --check-folder FOLDER, --check-images FILE..., or "
              "--check-dataset NAME to see its predictions before it is used", file=sys.stderr)
    else:
        images, labels, what = got
        result = check(model, card, images, labels, what)
        for line in result.lines():
            print(line, file=sys.stderr if line.startswith("WARNING") else sys.stdout)
        if result.warnings and args.strict:
            raise XaiError("the check found problems (--strict): nothing was saved")
    if args.dry_run:
        print("--dry-run: nothing was saved")
        return 0
    path = save_imported(draft, args.models_dir, replace=args.replace)
    print(f"saved {path} (imported {draft.format}: every page, `python -m core explain --model {card.id}`, the API)")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from core.datasets import get_source

    src = get_source(args.dataset)
    if not src.downloadable:
        raise XaiError(f"{src.info.title} cannot be downloaded automatically. {src.info.source}")
    root = Path(args.data_dir) if args.data_dir else config.data_dir()
    bar = None

    def progress(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"{args.dataset} {args.size or ''}".strip(),
                       file=sys.stderr)
        bar.n = done
        bar.refresh()

    try:
        path = src.download(root, args.size, progress)
    finally:
        if bar is not None:
            bar.close()
    print(f"saved {path}")
    return 0


def cmd_ensure_demo(args: argparse.Namespace) -> int:
    from core.modelling.training import ensure_demo_model

    path = ensure_demo_model(_tqdm_progress("training the demo model (first start only)"), args.models_dir)
    print(f"demo model ready: {path}")
    return 0


def parse_indices(spec: str, n: int) -> list[int]:
    """``"0-63,70,80-82"`` -> sorted unique indices, each checked against a split of ``n`` images."""
    out: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise XaiError(f"--indices takes numbers and ranges like 0-63,70; got {part!r}") from None
        if first > last:
            raise XaiError(f"--indices range {part!r} runs backwards")
        out.update(range(first, last + 1))
    bad = [i for i in sorted(out) if not 0 <= i < n]
    if bad:
        raise XaiError(f"--indices must be in [0, {n - 1}] for this split; {bad[0]} is not")
    return sorted(out)


def _engine_progress(desc: str):
    """A tqdm bar in model images for one engine call."""
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit="img", file=sys.stderr, leave=False)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def _method_names(text: str) -> list[str]:
    """``--methods``: comma-separated names (or ``all``); an empty list is an error, not a run that does nothing."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise XaiError(f"--methods names no method ({text!r}): give comma-separated names, e.g. grad_cam,saliency, "
                       "or 'all' (`python -m core list` shows them)")
    return names


def cmd_explain(args: argparse.Namespace) -> int:
    from core.modelling.checkpoints import load_model, resolve_model_path
    from core.datasets import load_dataset
    from core.explainers import explain_batch, get_method, list_methods
    from core.modelling.prediction import predict_proba
    from core.present.captions import stability_caption
    from core.present.render import draw_explanation, png_bytes

    methods = _method_names(args.methods)
    model, card = load_model(args.model)
    if methods == ["all"]:
        methods = list_methods(model)  # every method that applies to this model
    params = _parse_params(args.param or [], methods)
    if args.image:
        return _explain_photo(args, model, card, methods, params)
    root = _data_root(args, card)
    from core.modelling.cards import fit_dataset

    ds = fit_dataset(card, load_dataset(args.dataset or card.dataset, split=args.split, size=card.input_size, root=root))
    if ds.extras.get("class_mapping"):
        print(ds.extras["class_mapping"], file=sys.stderr)
    if args.indices is not None:
        indices, per_folder = parse_indices(args.indices, len(ds)), True
    else:
        if not 0 <= args.index < len(ds):
            raise XaiError(f"--index must be in [0, {len(ds) - 1}] for split {args.split!r}")
        indices, per_folder = [args.index], False
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = ds.batch(np.asarray(indices))
    proba = predict_proba(model, images)
    from core.modelling.trust import SATURATION_NOTE, model_warnings, ood_check, saturated

    warnings = model_warnings(card)
    ood = ood_check(model, resolve_model_path(args.model), images)
    entries: list[dict[str, Any]] = []
    for k, i in enumerate(indices):
        label, pred = int(ds.labels[i]), int(proba[k].argmax())
        entries.append({"index": i, "label": label, "label_name": card.classes[label], "prediction": pred,
                        "prediction_name": card.classes[pred],
                        "probabilities": {c: float(p) for c, p in zip(card.classes, proba[k])}, "methods": {},
                        "ood": None if ood is None else {"score": ood[k].score, "threshold": ood[k].threshold,
                                                         "flagged": ood[k].flagged},
                        "saturated": saturated(float(proba[k].max()))})

    background = None
    if any(get_method(m).needs_background for m in methods):
        background = fit_dataset(card, load_dataset(ds.info.name, split="train", size=card.input_size,
                                                    root=root)).sample(256)
    for name in methods:
        results = explain_batch(model, images, name, targets=args.target, background=background,
                                progress=_engine_progress(f"{name} on {len(indices)} image(s)"), **params[name])
        for i, entry, e in zip(indices, entries, results):
            folder = out / str(i) if per_folder else out
            folder.mkdir(exist_ok=True)
            np.save(folder / f"{name}.npy", e.attribution)
            drawn = draw_explanation(ds.image(i), e, args.view)
            (folder / f"{name}.png").write_bytes(png_bytes(drawn.image))
            entry["methods"][name] = {"target": e.target, "target_name": card.classes[e.target], "params": e.params,
                                      "seconds": round(e.seconds, 4), "flat": e.flat, "extras": e.extras,
                                      "rule": drawn.rule}
        seconds = sum(e.seconds for e in results)
        print(f"{name:24s} {len(results)} image(s) {seconds:.3f} s"
              + (f"  target={card.classes[results[0].target]}" if len(results) == 1 else ""))
        if len(results) == 1 and (note := stability_caption(results[0].extras)):
            print(f"{'':24s} {note}")
    # why not to believe these predictions, after the results (an error above stops before them)
    for w in warnings:
        print(f"WARNING: {w}", file=sys.stderr)
    for e in entries:
        if e["ood"] and e["ood"]["flagged"]:
            print(f"WARNING: image {e['index']}: {ood[entries.index(e)].message}", file=sys.stderr)
    if any(e["saturated"] for e in entries):
        print(f"note: {SATURATION_NOTE}", file=sys.stderr)
    head = {"model": str(args.model), "dataset": ds.info.name, "split": args.split, "model_warnings": warnings}
    summary = {**head, "images": entries} if per_folder else {**head, **entries[0]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out}/")
    return 0


def _explain_photo(args: argparse.Namespace, model, card, methods: list[str], params: dict) -> int:
    """``explain --image FILE``: any photo (read with the upload limits, preprocessed as the model card says: for
    ImageNet models the weights' own resize and crop), its top-k classes, and the maps."""
    from core.explainers import explain_batch
    from core.datasets.images import preprocess_for, read_upload
    from core.modelling.prediction import predict_proba
    from core.present.captions import stability_caption
    from core.present.render import draw_explanation, png_bytes

    path = Path(args.image)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise XaiError(f"cannot read {path}: {exc.strerror or exc}") from None
    image, display = preprocess_for(read_upload(data), card)
    images = image.unsqueeze(0)
    proba = predict_proba(model, images)[0]
    top = [int(c) for c in np.argsort(-proba)[: max(1, args.top_k)]]
    print("top-%d: " % len(top) + " · ".join(f"{k + 1}. {card.classes[c]} ({proba[c]:.1%})" for k, c in enumerate(top)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    entry: dict[str, Any] = {"model": str(args.model), "image": str(path), "prediction": top[0],
                             "prediction_name": card.classes[top[0]],
                             "top_k": [{"class": c, "name": card.classes[c], "probability": float(proba[c])} for c in top],
                             "methods": {}}
    for name in methods:
        e = explain_batch(model, images, name, targets=args.target, progress=_engine_progress(name), **params[name])[0]
        np.save(out / f"{name}.npy", e.attribution)
        drawn = draw_explanation(display, e, args.view)  # over the photo's own crop
        (out / f"{name}.png").write_bytes(png_bytes(drawn.image))
        entry["methods"][name] = {"target": e.target, "target_name": card.classes[e.target], "params": e.params,
                                  "seconds": round(e.seconds, 4), "flat": e.flat, "extras": e.extras,
                                  "rule": drawn.rule}
        print(f"{name:24s} {e.seconds:.3f} s  target={card.classes[e.target]}")
        if note := stability_caption(e.extras):
            print(f"{'':24s} {note}")
    (out / "summary.json").write_text(json.dumps(entry, indent=2, default=str))
    print(f"wrote {out}/")
    return 0


def cmd_explain_split(args: argparse.Namespace) -> int:
    """Every image of a split (or --limit / --sample of them), stored as Parquet parts and a manifest in --out."""
    from tqdm import tqdm

    from core.runs import describe_estimate, explain_split

    methods = _method_names(args.methods)
    params = _parse_params(args.param or [], methods) if methods != ["all"] else {}
    bar = None

    def announce(plan, estimate) -> None:
        nonlocal bar
        print(describe_estimate(estimate), file=sys.stderr)
        for f, why in estimate["skipped_files"]:
            print(f"note: {f}: {why} (recorded as a failure)", file=sys.stderr)
        bar = tqdm(total=len(plan.ids), desc="explain-split", unit="img", file=sys.stderr)

    def progress(done: int, total: int, message: str = "") -> None:
        if bar is not None:
            bar.n = done
            bar.set_postfix_str(message, refresh=False)
            bar.refresh()

    try:
        manifest = explain_split(args.model, args.dataset, args.split, methods, args.out, params=params, seed=args.seed,
                                 targets=args.targets, engine="ray" if args.ray else "local", address=args.address,
                                 workers=args.workers, batch_size=args.batch_size, limit=args.limit,
                                 sample=args.sample, resume=not args.restart, data_dir=args.data_dir,
                                 progress=progress, announce=announce,
                                 **({"part_size": args.part_size} if args.part_size else {}))
    finally:
        if bar is not None:
            bar.close()
    failures = manifest["failures"]
    print(f"wrote {args.out}/: {manifest['images']['count']:,} images x {len(manifest['methods'])} method(s), "
          f"{manifest['rows']:,} rows in {len(manifest['parts'])} part(s), {len(failures)} failure(s); "
          f"engine {manifest['engine']['name']}")
    for f in failures[:10]:
        print(f"failure: image {f['id'] if f['id'] is not None else f.get('file')}"
              f"{' ' + f['method'] if f['method'] else ''}: {f['message']}", file=sys.stderr)
    return 0


def cmd_fetch_weights(args: argparse.Namespace) -> int:
    """Download torchvision's ImageNet weights for an architecture (checksum checked), or use a file you have."""
    from core.modelling.pretrained import cache_path, fetch_weights, imagenet_id, use_weights_file, weights_present

    if args.file:
        for note in use_weights_file(args.arch, args.file):
            print(f"note: {note}")
        print(f"{args.arch}: using {Path(args.file).expanduser().resolve()} (checked: it loads and fits); model "
              f"{imagenet_id(args.arch)} is ready")
        return 0
    if weights_present(args.arch) and not cache_path(args.arch).is_file():
        print(f"{args.arch}: weights already given; downloading a copy into torchvision's cache anyway")
    path = fetch_weights(args.arch, url=args.url, progress=not args.quiet)
    print(f"{args.arch}: {path} (checksum checked); model {imagenet_id(args.arch)} is ready")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from core.faces.api import serve

    if args.host not in ("127.0.0.1", "localhost", "::1") and not __import__("os").environ.get("XAI_API_TOKEN"):
        print(f"warning: listening on {args.host} without XAI_API_TOKEN: anyone who can reach this port can use the "
              "API (see the README on running it behind a reverse proxy)", file=sys.stderr)
    serve(args.host, args.port)
    return 0


def _data_root(args: argparse.Namespace, card) -> str | None:
    """``--data-dir``, else where the app would read the dataset (:func:`core.modelling.data_roots.locate`: the
    remembered folder, the default one, or the folder the model was trained from)."""
    from core.modelling.data_roots import locate

    name = args.dataset or card.dataset
    return locate(name, given=args.data_dir, card=card if name == card.dataset else None)[0]


def _metric_options() -> dict[str, tuple[Any, list[str]]]:
    """Every metric option by name, with the metrics that declare it (the flags are built from these)."""
    from core.quality import get_metric, list_metrics

    out: dict[str, tuple[Any, list[str]]] = {}
    for m in list_metrics():
        for p in get_metric(m).params:
            out.setdefault(p.name, (p, []))[1].append(m)
    return out


def _metric_option_flags(q: argparse.ArgumentParser) -> None:
    """One flag per declared metric option (e.g. ``--replacement`` for deletion and insertion), and
    ``--metric-param METRIC.NAME=VALUE`` for any option of one metric."""
    for name, (p, owners) in _metric_options().items():
        q.add_argument(f"--{name.replace('_', '-')}", dest=f"metric_option_{name}", default=None,
                       choices=list(p.choices) or None,
                       help=f"{p.help} ({', '.join(owners)}; default: {p.default})")
    q.add_argument("--metric-param", action="append", metavar="METRIC.NAME=VALUE",
                   help="an option of one quality metric; repeatable")


def _metric_params(args: argparse.Namespace, metrics: list[str]) -> dict[str, dict[str, Any]]:
    from core.quality import get_metric

    out = _parse_params(args.metric_param or [], metrics, what="metric")
    for m in metrics:
        for p in get_metric(m).params:
            given = getattr(args, f"metric_option_{p.name}", None)
            if given is not None:
                out[m].setdefault(p.name, given)
    return {m: v for m, v in out.items() if v}


def cmd_quality(args: argparse.Namespace) -> int:
    import csv

    from core.modelling.checkpoints import load_model, resolve_model_path
    from core.datasets import load_dataset
    from core.explainers import get_method, list_methods
    from core.quality import evaluate, get_metric, list_metrics

    methods = _method_names(args.methods)
    methods = list_methods() if methods == ["all"] else methods
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    metrics = list_metrics() if metrics == ["all"] else metrics
    for m in methods:
        get_method(m)
    for m in metrics:
        get_metric(m)
    if args.n < 1:
        raise XaiError(f"--n must be at least 1, got {args.n}")
    path = resolve_model_path(args.model)
    model, card = load_model(path)
    root = _data_root(args, card)
    from core.modelling.cards import fit_dataset

    ds = fit_dataset(card, load_dataset(args.dataset or card.dataset, args.split, size=card.input_size, root=root))
    params = _parse_params(args.param or [], methods)
    background = None
    if any(get_method(m).needs_background for m in methods):
        background = fit_dataset(card, load_dataset(ds.info.name, "train", size=card.input_size, root=root)).sample(256)
    from tqdm import tqdm

    bar = tqdm(total=len(methods) * (1 + len(metrics)), unit="stage", file=sys.stderr, desc="quality")

    def progress(stage: int, stages: int, label: str, done: int, total: int) -> None:
        bar.n = stage
        bar.set_postfix_str(f"{label} {done}/{total}", refresh=True)

    try:
        report = evaluate(model, ds, methods, metrics, n=args.n, seed=args.seed, params=params, background=background,
                          progress=progress, cache_dir=path / "quality", weights=card.weights_sha256, model_id=card.id,
                          metric_params=_metric_params(args, metrics))
    finally:
        bar.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = report.table()
    with open(out / "table.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    with open(out / "values.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "method", "metric", "value"])
        w.writeheader()
        w.writerows(report.rows)
    ranking = report.ranking()
    (out / "ranking.json").write_text(json.dumps([{"method": m, "mean_rank": r, "why": why} for m, r, why in ranking], indent=1))
    print(f"{card.id} on {ds.info.name}/{args.split}, n = {len(report.indices)} (seed {args.seed})")
    head = f"{'method':24s}" + "".join(f"{get_metric(m).name[:15]:>17s}" for m in metrics)
    print(head)
    for method in methods:
        cells = [report.cell(method, m) for m in metrics]
        print(f"{method:24s}" + "".join(f"{'n/a':>17s}" if c.skipped else f"{c.mean:>9.3f} ±{c.ci95:<6.3f}" for c in cells))
    print("direction: " + ", ".join(f"{m} {'higher' if get_metric(m).higher_is_better else 'lower'} is better" for m in metrics))
    for m, _, why in ranking:
        print(f"  {m}: {why}")
    print(f"wrote {out}/table.csv, values.csv, ranking.json")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from core.modelling.architectures import list_architectures
    from core.modelling.checkpoints import broken_models, list_models
    from core.datasets import list_datasets
    from core.explainers import get_method, list_methods

    print("datasets:      " + ", ".join(list_datasets()))
    print("architectures: " + ", ".join(list_architectures()))
    print("methods:")
    for m in list_methods():
        cls = get_method(m)
        print(f"  {m:24s} {', '.join(f'{p.name}={p.default}' for p in cls.params)}")
    from core.quality import get_metric, list_metrics

    print("quality metrics:")
    for m in list_metrics():
        cls = get_metric(m)
        options = "".join(f"; {p.name}={p.default}" + (f" ({'|'.join(p.choices)})" if p.choices else "")
                          for p in cls.params)
        print(f"  {m:24s} {cls.category}, {'higher' if cls.higher_is_better else 'lower'} is better{options}")
    print("models:")
    for path, card in list_models(args.models_dir):
        acc = card.metrics.get("accuracy")
        measured = f"acc {acc:.3f}" if acc is not None else "not evaluated"
        made = f"imported {card.source['format']} from {card.source.get('name')}, " if card.imported else ""
        print(f"  {path}  ({card.dataset}, {card.arch}, {made}{measured})")
    from core.modelling.pretrained import IMAGENET, cache_path, published_accuracy, unpublished_note

    print("ImageNet models (any photo: explain --model ID --image FILE):")
    for _, card in list_models(args.models_dir, dataset=IMAGENET):
        where = card.training.get("file") or f"weights missing: python -m core fetch-weights {card.arch} (to {cache_path(card.arch)})"
        print(f"  {card.id:26s} {published_accuracy(card)}; {where}")
        if unpublished_note(card):
            print(f"WARNING: {card.id}: {unpublished_note(card)}", file=sys.stderr)
    for path, reason in broken_models(args.models_dir):
        print(f"  {path}  BROKEN: {reason}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="XAI dashboard command line")
    p.add_argument("--models-dir", default=None, help=f"models folder (default: {config.models_dir()})")
    sub = p.add_subparsers(dest="command", required=True)

    from core.modelling.training import CLASS_WEIGHTING, FLIPS, OPTIMIZERS, PRESETS, SCHEDULES

    t = sub.add_parser("train", help="train a model and save it with its model card (defaults: the dataset's recipe)")
    t.add_argument("--dataset", default="shapes")
    t.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="pathmnist-imagenet: ResNet-18 from ImageNet weights at 224 px (the published 93%% recipe)")
    t.add_argument("--arch", default=None)
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=None, help="learning rate (peak rate for the one-cycle schedule)")
    t.add_argument("--weight-decay", type=float, default=None)
    t.add_argument("--optimizer", choices=OPTIMIZERS, default=None)
    t.add_argument("--schedule", choices=SCHEDULES, default=None)
    t.add_argument("--flip", choices=FLIPS, default=None, help="random flips")
    t.add_argument("--rotation", type=float, default=None, help="max random rotation in degrees")
    t.add_argument("--shift", type=float, default=None, help="max random shift as a fraction of the side")
    t.add_argument("--color-jitter", type=float, default=None, help="max relative brightness/contrast change")
    t.add_argument("--class-weighting", choices=CLASS_WEIGHTING, default=None,
                   help="weight the loss by inverse class frequency (auto: when classes are imbalanced)")
    t.add_argument("--freeze", default=None, help="comma-separated layers to keep fixed, e.g. conv1,bn1,layer1,layer2")
    t.add_argument("--pretrained", action="store_const", const=True, default=None,
                   help="start from torchvision's ImageNet weights (from the torch cache or --weights-file)")
    t.add_argument("--weights-file", default=None, help="ImageNet weights file (default: torchvision's cache)")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--size", type=int, default=None, help="input size in px (default: the recipe's or the dataset's)")
    t.add_argument("--data-dir", default=None)
    t.add_argument("--model-id", default=None, help="folder name under the models folder (default: DATASET-ARCH[-N])")
    t.add_argument("--max-train", type=int, default=None, help="use only the first N training images")
    t.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="test-split metrics of a model; writes metrics.json and predictions.npz beside it")
    ev.add_argument("--model", required=True, help="model folder (or id under the models folder)")
    ev.add_argument("--dataset", default=None, help="another dataset than the model's own, or 'folder' with --data-dir "
                                                     "(an imported model: class names matched in any order)")
    ev.add_argument("--data-dir", default=None)
    ev.set_defaults(func=cmd_evaluate)

    im = sub.add_parser("import-model", help="import a classifier made elsewhere (state dict, TorchScript, ONNX, timm "
                                             "or Hugging Face folder), check it and save it to models/<id>/")
    im.add_argument("source", help="the model file or folder")
    from core.importers import SETTINGS

    for setting in SETTINGS:
        im.add_argument(setting.cli_flag, dest=setting.name, default=None, choices=list(setting.choices) or None,
                        type=str, help=setting.help)
    im.add_argument("--classes-file", default=None, metavar="FILE",
                    help="class names from a file: one a line, or JSON (a list, or Hugging Face's id2label)")
    im.add_argument("--check-dataset", default=None, metavar="NAME", help="check the model on this dataset's images "
                                                                         "(default: its own dataset, where it is here)")
    im.add_argument("--check-split", default="test", choices=SPLITS)
    im.add_argument("--check-folder", default=None, metavar="FOLDER",
                    help="check on a folder of images (labelled when its class folders are the model's classes)")
    im.add_argument("--check-images", nargs="+", default=None, metavar="FILE", help="check on these image files")
    im.add_argument("--check-n", type=int, default=64, help="images the check runs on (default 64)")
    im.add_argument("--data-dir", default=None, help="where --check-dataset's files are")
    im.add_argument("--strict", action="store_true", help="save nothing when the check warns")
    im.add_argument("--replace", action="store_true", help="replace a model of the same id")
    im.add_argument("--dry-run", action="store_true", help="read, check and show the card; save nothing")
    im.set_defaults(func=cmd_import_model)

    e = sub.add_parser("explain", help="explain one dataset image with one or more methods")
    e.add_argument("--model", required=True, help="model folder (or id under the models folder)")
    e.add_argument("--dataset", default=None, help="default: the model card's dataset")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--split", default="test", choices=SPLITS)
    e.add_argument("--index", type=int, default=0, help="one image: files straight in --out")
    e.add_argument("--indices", default=None, metavar="SPEC",
                   help="many images in batched calls, e.g. 0-63 or 0-9,20: files in --out/<index>/")
    e.add_argument("--image", default=None, metavar="FILE",
                   help="explain this photo instead of a dataset image (e.g. with --model imagenet-resnet50)")
    e.add_argument("--top-k", type=int, default=5, help="with --image: how many top classes to print")
    e.add_argument("--methods", default="grad_cam,integrated_gradients,saliency",
                   help="comma-separated, or 'all' (every method that applies to the model)")
    e.add_argument("--target", type=int, default=None, help="class index (default: the predicted class)")
    e.add_argument("--param", action="append", metavar="METHOD.NAME=VALUE", help="a method parameter; repeatable")
    e.add_argument("--view", default="auto", choices=("auto", "signed", "magnitude"),
                   help="the PNGs' colour rule: auto (each method's declared rule; summary.json says which), signed or "
                        "magnitude (unsigned maps are always magnitude)")
    e.add_argument("--out", required=True)
    e.set_defaults(func=cmd_explain)

    es = sub.add_parser("explain-split", help="explain every image of a split (local engine, or a Ray cluster with "
                                               "--ray); Parquet parts and manifest.json in --out; resumable")
    es.add_argument("--model", required=True, help="model folder (or id under the models folder)")
    es.add_argument("--dataset", default=None, help="default: the model card's dataset")
    es.add_argument("--data-dir", default=None)
    es.add_argument("--split", default="test", choices=SPLITS)
    es.add_argument("--methods", default="grad_cam", help="comma-separated, or 'all'")
    es.add_argument("--param", action="append", metavar="METHOD.NAME=VALUE", help="a method parameter; repeatable")
    es.add_argument("--seed", type=int, default=0, help="stochastic methods explain image ID with seed + ID")
    es.add_argument("--targets", choices=("predicted", "label"), default="predicted",
                    help="explain the predicted class (default) or the true class of each image")
    es.add_argument("--limit", type=int, default=None, help="only the first N images")
    es.add_argument("--sample", type=int, default=None, help="a random sample of N images, drawn with --seed "
                                                              "(needed for LIME, SHAP, Occlusion over many images)")
    es.add_argument("--batch-size", type=int, default=32, help="images per model call")
    es.add_argument("--part-size", type=int, default=None, help="images per stored part (default 256): the unit "
                                                                 "of resume and of a Ray task")
    es.add_argument("--ray", action="store_true", help="run on Ray (a local cluster sized to this machine, or --address)")
    es.add_argument("--address", default=None, help="with --ray: join an existing cluster (host:port of its head)")
    es.add_argument("--workers", type=int, default=None, help="with --ray: actors (default: one per CPU)")
    es.add_argument("--restart", action="store_true", help="replace the run in --out instead of resuming it")
    es.add_argument("--out", required=True)
    es.set_defaults(func=cmd_explain_split)

    dl = sub.add_parser("download", help="download a dataset file (MedMNIST) with a progress bar")
    dl.add_argument("dataset")
    dl.add_argument("--size", type=int, default=None, help="28, 64 (default), 128 or 224")
    dl.add_argument("--data-dir", default=None)
    dl.set_defaults(func=cmd_download)

    d = sub.add_parser("ensure-demo", help="train the demo model if it does not exist")
    d.set_defaults(func=cmd_ensure_demo)


    q = sub.add_parser("quality", help="explanation-quality metrics per method over a sample of images")
    q.add_argument("--model", required=True, help="model folder (or id under the models folder)")
    q.add_argument("--methods", default="grad_cam,integrated_gradients,saliency", help="comma-separated, or 'all'")
    q.add_argument("--metrics", default="deletion,insertion,pointing_game,relevance_mass,sparseness",
                   help="comma-separated, or 'all' (see `list`)")
    q.add_argument("--n", type=int, default=100, help="number of images, drawn with --seed")
    _metric_option_flags(q)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--dataset", default=None, help="default: the model card's dataset")
    q.add_argument("--split", default="test", choices=SPLITS)
    q.add_argument("--data-dir", default=None)
    q.add_argument("--param", action="append", metavar="METHOD.NAME=VALUE", help="a method parameter; repeatable")
    q.add_argument("--out", required=True)
    q.set_defaults(func=cmd_quality)

    fw = sub.add_parser("fetch-weights", help="download torchvision's ImageNet weights (progress bar, checksum), or "
                                              "use a weights file you have (--from)")
    from core.modelling.pretrained import imagenet_archs

    fw.add_argument("arch", choices=sorted({*imagenet_archs(), "resnet18_small"}))
    fw.add_argument("--from", dest="file", default=None, metavar="FILE",
                    help="a weights file you already have: checked (it must load and fit), then remembered; not copied")
    fw.add_argument("--url", default=None, help="a mirror of torchvision's file (the checksum is still checked)")
    fw.add_argument("--quiet", action="store_true", help="no progress bar")
    fw.set_defaults(func=cmd_fetch_weights)

    sv = sub.add_parser("serve", help="the REST API (FastAPI + uvicorn); docs at http://HOST:PORT/docs")
    sv.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: this machine only)")
    sv.add_argument("--port", type=int, default=8000)
    sv.set_defaults(func=cmd_serve)

    ls = sub.add_parser("list", help="list datasets, architectures, methods and trained models")
    ls.set_defaults(func=cmd_list)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except XaiError as exc:
        hint = ""
        if isinstance(exc, DatasetError) and "data_dir" in vars(args) and not args.data_dir:
            hint = " (or, if the files are in another folder, give it with --data-dir FOLDER)"
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the user named cannot be read or written (e.g. --out)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
