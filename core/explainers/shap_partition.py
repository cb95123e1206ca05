"""SHAP Partition explainer with an image masker (Lundberg & Lee, 2017), via the ``shap`` package."""
from __future__ import annotations

import numpy as np
import shap
import torch

from core.explainers.base import Attribution, Explainer, Param
from core.explainers.registry import register
from core.modelling.inference import describe, forward_logits

MASKERS = ("blur(8,8)", "blur(16,16)", "inpaint_telea", "inpaint_ns")


@register
class ShapPartition(Explainer):
    name = "shap_partition"
    title = "SHAP (Partition)"
    description = ("Owen values over a hierarchy of image regions: regions are hidden with the masker and the "
                   "class logit's changes are shared out. Model calls only.")
    paper = "Lundberg, Lee. A Unified Approach to Interpreting Model Predictions. NeurIPS 2017. arXiv:1705.07874"
    needs_gradients = False
    family = "Perturbation"
    params = (
        Param("masker", "choice", "blur(8,8)", help="How hidden regions are filled", choices=MASKERS, label="Masker"),
        Param("max_evals", "int", 500, help="Model evaluations (more = finer regions)", min=20, max=20000, label="Max evals"),
        Param("batch_size", "int", 64, help="Masked images per forward pass", min=1, max=1024, label="Batch"),
    )
    batched = False  # shap explains one image at a time
    shared_effects = frozenset({"global_rng"})  # the partition search breaks ties with np.random.randn

    peak_param = "batch_size"

    @classmethod
    def peak_images(cls, params, image_shape, chunk):
        return params["batch_size"]  # perturbed copies per forward pass

    @classmethod
    def cost(cls, params, model, image_shape):
        return params["max_evals"]

    passes = "fast"  # every model call goes through the fast inference path

    @classmethod
    def probe_params(cls, params, units, image_shape):
        return {**params, "max_evals": int(min(20000, max(20, units)))}

    def attribute(self, x, targets, *, seeds, progress, masker, max_evals, batch_size):
        target = int(targets[0])
        device = x.device
        image = x[0].permute(1, 2, 0).detach().cpu().numpy().astype(np.float32)

        def f(batch: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).permute(0, 3, 1, 2).to(device)
            out = forward_logits(self.model, t, batch_size=batch_size)[:, target : target + 1].cpu().numpy()
            progress(len(batch))
            return out

        explainer = shap.Explainer(f, shap.maskers.Image(masker, image.shape))
        sv = explainer(image[None], max_evals=max_evals, batch_size=batch_size, silent=True)
        values = np.asarray(sv.values)[0, ..., 0]  # (H, W, C)
        # base value: f(fully masked image)
        return Attribution(values.transpose(2, 0, 1)[None], [{"base_value": float(np.ravel(sv.base_values)[0]),
                                                              "inference": describe(self.model, x.shape[1:])["backend"]}])


def warm_up() -> None:
    """Pay shap's one-off just-in-time compilation (seconds, at the first Partition call in a process) now:
    the app calls this in a background thread at start, so the first user does not wait for it."""
    from core.modelling.architectures import build_model
    from core.explainers.engine import explain

    gen = torch.Generator().manual_seed(0)
    model = build_model("small_cnn", 2, 3, [0.5] * 3, [0.25] * 3).eval()
    explain(model, torch.rand(3, 16, 16, generator=gen), "shap_partition", max_evals=40)
