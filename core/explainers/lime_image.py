"""LIME (Ribeiro et al., 2016) on superpixels, via the ``lime`` package."""
from __future__ import annotations

import numpy as np
import torch
from lime import lime_image
from lime.wrappers.scikit_image import SegmentationAlgorithm

from core.explainers.base import Attribution, Explainer, Param, seed_param
from core.explainers.registry import register

HIDE = {"mean": None, "black": 0.0, "grey": 0.5}

# lime 0.2 always draws a tqdm bar on stdout (no switch); the app and CLI report progress themselves.
lime_image.tqdm = lambda iterable, *args, **kwargs: iterable


def segmenter(segmentation: str, n_segments: int, compactness: float, kernel_size: float, max_dist: float,
              scale: float) -> SegmentationAlgorithm:
    if segmentation == "slic":
        return SegmentationAlgorithm("slic", n_segments=n_segments, compactness=compactness, start_label=0)
    if segmentation == "quickshift":
        return SegmentationAlgorithm("quickshift", kernel_size=kernel_size, max_dist=max_dist, ratio=0.2)
    return SegmentationAlgorithm("felzenszwalb", scale=scale, sigma=0.5, min_size=20)


@register
class Lime(Explainer):
    name = "lime"
    title = "LIME"
    description = ("Fits a weighted linear model to the class probability of copies with random superpixels hidden; "
                   "each superpixel gets its coefficient.")
    paper = "Ribeiro, Singh, Guestrin. \"Why Should I Trust You?\": Explaining the Predictions of Any Classifier. KDD 2016. arXiv:1602.04938"
    needs_gradients = False
    family = "Perturbation"
    stochastic = True
    outlier_perc = 0.0
    units = "probability"  # coefficients of a linear model of the class probability
    params = (
        Param("num_samples", "int", 1000, help="Perturbed copies (model calls)", min=10, max=20000, label="Samples"),
        Param("segmentation", "choice", "slic", help="Superpixel algorithm", choices=("slic", "quickshift", "felzenszwalb"),
              label="Segmentation"),
        Param("n_segments", "int", 50, help="SLIC: approximate number of superpixels", min=2, max=1000, label="SLIC segments",
              when=("segmentation", "slic")),
        Param("compactness", "float", 10.0, help="SLIC: colour vs space trade-off (higher = squarer)", min=0.01, max=100.0, step=1.0,
              label="SLIC compactness", when=("segmentation", "slic")),
        Param("kernel_size", "float", 2.0, help="Quickshift: Gaussian kernel width (small for small images)", min=0.5, max=20.0, step=0.5,
              label="Quickshift kernel", when=("segmentation", "quickshift")),
        Param("max_dist", "float", 6.0, help="Quickshift: cut-off distance (higher = fewer segments)", min=1.0, max=200.0, step=1.0,
              label="Quickshift max dist", when=("segmentation", "quickshift")),
        Param("scale", "float", 50.0, help="Felzenszwalb: scale (higher = larger segments)", min=1.0, max=2000.0, step=10.0,
              label="Felzenszwalb scale", when=("segmentation", "felzenszwalb")),
        Param("num_features", "int", 20, help="Superpixels kept in the map (largest |weight|)", min=1, max=1000, label="Features"),
        Param("positive_only", "bool", False, help="Keep only superpixels that support the class", label="Positive only"),
        Param("hide_color", "choice", "mean", help="Fill of hidden superpixels: their mean colour, black or grey",
              choices=tuple(HIDE), label="Hide colour"),
        Param("batch_size", "int", 128, help="Copies per forward pass (lime's default of 10 is slow)", min=1, max=2048, label="Batch"),
        seed_param(),
    )
    batched = False  # one segmentation and one linear fit per image
    # lime draws from its own RandomState(seed) and only runs the model forward: no shared-state effect

    @classmethod
    def cost(cls, params, model, image_shape):
        return params["num_samples"]

    def attribute(self, x, targets, *, seeds, progress, num_samples, segmentation, n_segments, compactness, kernel_size,
                  max_dist, scale, num_features, positive_only, hide_color, batch_size):
        target, seed = int(targets[0]), seeds[0]
        channels = x.shape[1]
        device = x.device
        image = x[0].permute(1, 2, 0).detach().cpu().double().numpy()
        if channels == 1:  # lime works on RGB; it gets a grey RGB copy, the model gets one channel back
            image = np.repeat(image, 3, axis=2)

        def classifier_fn(batch: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(np.ascontiguousarray(batch)).float().permute(0, 3, 1, 2).to(device)
            if channels == 1:
                t = t.mean(dim=1, keepdim=True)
            with torch.inference_mode():
                out = torch.softmax(self.model(t), dim=1).cpu().numpy()
            progress(len(batch))
            return out

        seg = segmenter(segmentation, n_segments, compactness, kernel_size, max_dist, scale)
        explainer = lime_image.LimeImageExplainer(random_state=seed)
        exp = explainer.explain_instance(
            image, classifier_fn, labels=(target,), top_labels=None, hide_color=HIDE[hide_color],
            num_features=100000, num_samples=num_samples, batch_size=batch_size, segmentation_fn=seg, random_seed=seed,
        )
        weights = sorted(exp.local_exp[target], key=lambda kv: -abs(kv[1]))
        if positive_only:
            weights = [kv for kv in weights if kv[1] > 0]
        lookup = np.zeros(int(exp.segments.max()) + 1, dtype=np.float32)
        for segment, weight in weights[:num_features]:
            lookup[segment] = weight
        every = sorted(exp.local_exp[target], key=lambda kv: -abs(kv[1]))
        extras = {"n_superpixels": int(len(np.unique(exp.segments))), "score": float(exp.score),
                  "local_pred": float(np.ravel(exp.local_pred)[0]) if exp.local_pred is not None else None,
                  # every superpixel's weight, largest |weight| first, and the superpixel map itself
                  # (the engine moves it to Explanation.segments): the LIME picture is drawn from these
                  "superpixel_weights": [[int(k), float(v)] for k, v in every],
                  "segments": exp.segments.astype(np.int32)}
        return Attribution(lookup[exp.segments][None], [extras])
