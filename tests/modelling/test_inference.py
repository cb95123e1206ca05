"""The fast inference path: the same function as the torch model, outputs that do not depend on the batch, and a
safe fall-back wherever the export cannot be trusted."""
import sys

import numpy as np
import pytest
import torch
from torch import nn

from core.modelling import inference
from core.modelling.architectures import build_model
from core.modelling.inference import describe, forward_logits, path_for
from tests.helpers import make_classifier


def _images(n, c=3, size=32, seed=0):
    return torch.rand((n, c, size, size), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch,size", [("small_cnn", 32), ("resnet18", 64)])
def test_onnxruntime_path_computes_the_torch_models_function(arch, size):
    model = build_model(arch, 5, 3, [0.5] * 3, [0.25] * 3).eval()
    x = _images(12, size=size)
    with torch.inference_mode():
        want = model(x)
    got = forward_logits(model, x, batch_size=5)
    assert describe(model, (3, size, size))["backend"] == "onnxruntime"
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=inference.TOLERANCE * max(1.0, float(want.abs().max())))


def test_outputs_do_not_depend_on_the_batch_and_a_batch_size_is_chosen():
    model = make_classifier(3, num_classes=4, seed=1).eval()
    x = _images(40)
    first = forward_logits(model, x, batch_size=40)
    for b in (1, 3, 16):
        assert torch.equal(forward_logits(model, x, batch_size=b), first), b
    path = path_for(model, (3, 32, 32))
    assert path.batch_free
    for _ in range(len(inference.CANDIDATES)):  # the measuring chunks are real work: a few calls finish them
        forward_logits(model, x, batch_size=8)
    assert path.batch_size in inference.CANDIDATES


class Branchy(nn.Module):
    """A forward whose branch depends on the input's values: a trace would freeze one branch."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3 * 8 * 8, 2)

    def forward(self, x):
        out = self.lin(x.flatten(1))
        if x.mean() > 0.5:
            return out
        return -out


def test_a_value_dependent_branch_stays_on_torch_and_both_branches_are_right():
    model = Branchy().eval()
    dark, bright = _images(2, size=8) * 0.2, 0.8 + _images(2, size=8) * 0.2
    p = path_for(model, (3, 8, 8))
    assert p.backend == "torch" and "Python value" in p.why
    with torch.inference_mode():
        for x in (dark, bright):
            assert torch.equal(forward_logits(model, x), model(x))


def test_weights_changed_after_export_are_used():
    model = make_classifier(3, num_classes=3, seed=2).eval()
    x = _images(4)
    before = forward_logits(model, x)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)  # as an optimiser step would: in place
    with torch.inference_mode():
        want = model(x)
    after = forward_logits(model, x)
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, want, rtol=0, atol=1e-4 * max(1.0, float(want.abs().max())))


def test_switch_off_and_missing_onnxruntime_fall_back_to_torch_and_say_why(monkeypatch):
    x = _images(3)
    monkeypatch.setenv("XAI_FAST_INFERENCE", "0")
    model = make_classifier(3, seed=3).eval()
    assert describe(model, (3, 32, 32)) == {"backend": "torch", "why": "XAI_FAST_INFERENCE=0", "batch_size": None}
    with torch.inference_mode():
        assert torch.equal(forward_logits(model, x), model(x))
    monkeypatch.delenv("XAI_FAST_INFERENCE")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    other = make_classifier(3, seed=4).eval()
    assert describe(other, (3, 32, 32))["why"] == "onnxruntime is not installed"


def test_each_input_shape_and_thread_count_has_its_own_path():
    model = make_classifier(3, seed=5).eval()
    a, b = path_for(model, (3, 32, 32)), path_for(model, (3, 40, 40))
    assert a is not b and a is path_for(model, (3, 32, 32))
    assert np.isfinite(forward_logits(model, _images(2, size=40)).numpy()).all()
