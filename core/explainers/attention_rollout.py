"""Attention rollout (Abnar & Zuidema, 2020), for Vision Transformers.

Written here because none of our libraries has it (captum, pytorch-grad-cam, shap and Quantus offer no
attention-flow method). The attention matrices are read with hooks on every ``nn.MultiheadAttention``: a
forward pre-hook asks the layer for its per-head weights (``need_weights=True, average_attn_weights=False``;
torchvision's encoder asks for none) and a forward hook keeps them. The hooks are removed before returning and
run on a private replica (the declared effect).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.modelling.architectures import tokens_to_grid
from core.errors import AttributionError
from core.explainers.base import Explainer, Param
from core.explainers.registry import register


def rollout(attentions: list[torch.Tensor], head_fusion: str = "mean", discard_ratio: float = 0.0) -> torch.Tensor:
    """Attention rollout of per-layer attention weights, each (B, heads, T, T) with rows summing to 1, input
    side first. Per layer: heads fused (mean / max / min), optionally the ``discard_ratio`` smallest weights of
    each image dropped (never attention to the class token, index 0), the residual added as
    ``0.5 A + 0.5 I``, rows renormalised; the layers multiplied, later ones on the left. Returns (B, T, T):
    row ``i`` is how much each input token flows into output token ``i``."""
    fuse = {"mean": lambda a: a.mean(dim=1), "max": lambda a: a.amax(dim=1), "min": lambda a: a.amin(dim=1)}[head_fusion]
    b, _, t, _ = attentions[0].shape
    eye = torch.eye(t, dtype=attentions[0].dtype, device=attentions[0].device)
    result = eye.expand(b, t, t).clone()
    for a in attentions:
        fused = fuse(a)
        if discard_ratio > 0:
            flat = fused.reshape(b, -1).clone()
            k = int(flat.shape[1] * discard_ratio)
            if k:
                low = flat.topk(k, dim=1, largest=False).indices
                keep_cls = (low % t) == 0  # a column-0 weight: attention to the class token stays
                flat.scatter_(1, low, torch.where(keep_cls, flat.gather(1, low), torch.zeros_like(low, dtype=flat.dtype)))
            fused = flat.view(b, t, t)
        a_hat = 0.5 * fused + 0.5 * eye
        a_hat = a_hat / a_hat.sum(dim=-1, keepdim=True)
        result = a_hat @ result
    return result


def attention_weights(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Per-head attention weights (B, heads, T, T) of every self-attention layer, in forward order."""
    layers = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    kept: list[torch.Tensor] = []

    def ask(module, args, kwargs):
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

    def keep(module, args, output):
        kept.append(output[1].detach())

    handles = [h for m in layers for h in (m.register_forward_pre_hook(ask, with_kwargs=True),
                                            m.register_forward_hook(keep))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    if len(kept) != len(layers) or any(a is None or a.ndim != 4 for a in kept):
        raise AttributionError("attention rollout could not read the attention weights of every layer")
    return kept


@register
class AttentionRollout(Explainer):
    name = "attention_rollout"
    title = "Attention rollout"
    description = ("How much of the class token's final representation flows from each image patch, following the "
                   "attention weights through every layer with the residual connection. Class-agnostic: the same map "
                   "for every class. Transformers only.")
    paper = "Abnar, Zuidema. Quantifying Attention Flow in Transformers. ACL 2020. arXiv:2005.00928"
    family = "Attention"
    needs_gradients = False
    signed = False
    class_specific = False
    outlier_perc = 0.0
    units = "attention"  # the fraction of the class token's attention flow (sums to at most 1 over the patches)
    requires = {"attention": "attention rollout multiplies a transformer's attention matrices; this model has no "
                             "self-attention layers (a CNN)"}
    shared_effects = frozenset({"hooks"})
    params = (
        Param("head_fusion", "choice", "mean", help="How the heads of a layer are combined", choices=("mean", "max", "min"),
              label="Head fusion"),
        Param("discard_ratio", "float", 0.0, help="Fraction of the lowest attention weights dropped per layer (noise "
              "reduction; attention to the class token is kept)", min=0.0, max=0.99, step=0.05, label="Discard ratio"),
    )

    def attribute(self, x, targets, *, seeds, progress, head_fusion, discard_ratio):
        flow = rollout(attention_weights(self.model, x), head_fusion, discard_ratio)  # (B, T, T)
        grid = tokens_to_grid(flow[:, :1, :].transpose(1, 2))  # the class token's row, patches as a (B, 1, h, w) grid
        return F.interpolate(grid, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
