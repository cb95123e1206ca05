"""The engine's memory budget (issue 21): every method declares what one call holds at once; the engine measures
one model image, chunks batched calls to fit, and refuses a call that cannot fit with its estimate and advice."""
import numpy as np
import pytest
import torch

from core import ParameterError, explain_batch, get_method, list_methods
from core.explainers import memory, resolve_params
from core.modelling import sharing
from tests.helpers import hooks_on, make_classifier

MODEL = make_classifier(3, num_classes=4, seed=1)


def _x(n=1, size=32):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(3))


def test_one_model_image_is_measured_without_touching_the_shared_model():
    model = make_classifier(3, num_classes=4, seed=4)
    total, largest = memory.activation_bytes(model, (3, 32, 32))
    first_conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][0]
    assert largest >= first_conv.out_channels * 32 * 32 * 4  # at least the first convolution's output, float32
    assert total > 2 * largest
    assert memory.activation_bytes(model, (3, 64, 64))[0] == pytest.approx(4 * total, rel=0.1)  # area scales it
    assert hooks_on(model) == 0 and sharing.replicas_made(model) == 0


def test_a_call_over_the_budget_is_refused_with_its_estimate_and_what_fits(monkeypatch):
    each = memory.per_model_image(get_method("gradient_shap"), MODEL, (3, 32, 32))
    monkeypatch.setenv("XAI_MEMORY_BUDGET_MIB", str(100 * each / 2**20))  # room for 100 model images
    with pytest.raises(ParameterError, match=r"GradientSHAP would hold about .* at once \(1024 model images .*"
                                             r"memory budget is .*XAI_MEMORY_BUDGET_MIB.*lower n_samples \(now "
                                             r"1024\) to at most about 100"):
        explain_batch(MODEL, _x(), "gradient_shap", n_samples=1024)
    assert explain_batch(MODEL, _x(), "gradient_shap", n_samples=100, seed=0)[0].attribution.shape == (32, 32)


def test_a_batched_call_is_chunked_to_fit_and_gives_the_same_maps(monkeypatch):
    x = _x(8)
    whole = explain_batch(MODEL, x, "saliency")
    cls = get_method("saliency")
    each = memory.per_model_image(cls, MODEL, (3, 32, 32))
    calls = []
    real = cls.attribute

    def spy(self, xs, *a, **kw):
        calls.append(len(xs))
        return real(self, xs, *a, **kw)

    monkeypatch.setattr(cls, "attribute", spy)
    monkeypatch.setenv("XAI_MEMORY_BUDGET_MIB", str(3 * each / 2**20))  # room for three model images
    chunked = explain_batch(MODEL, x, "saliency")
    assert calls == [2, 2, 2, 2]
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(a.attribution, b.attribution)


@pytest.mark.parametrize("method", list_methods())
def test_every_parameter_at_the_top_of_its_range_is_estimated_and_run_or_refused(method, monkeypatch):
    """Generated from the registry: with every integer parameter at its declared maximum, either the estimate
    fits the budget, or the engine refuses before any work, naming the budget."""
    cls = get_method(method)
    top = {p.name: p.max for p in cls.params if p.kind == "int" and p.max is not None and p.name != "seed"}
    if cls.unavailable(MODEL) is not None:
        return
    full = resolve_params(method, MODEL, **top)
    each = memory.per_model_image(cls, MODEL, (3, 32, 32))
    chunk = 1 if not cls.batched else cls.chunk_for(full, (3, 32, 32))
    peak = cls.peak_images(full, (3, 32, 32), min(chunk, 4))
    monkeypatch.setenv("XAI_MEMORY_BUDGET_MIB", str(8 * each / 2**20))  # room for 8 model images
    if peak * each <= 8 * each:
        assert memory.fitting_chunk(cls, full, MODEL, (3, 32, 32), 1) == 1
    else:
        with pytest.raises(ParameterError, match="memory budget"):
            explain_batch(MODEL, _x(4), method, **top)


@pytest.mark.parametrize("method,params", [("gradient_shap", {"n_samples": 512}),
                                           ("smoothgrad", {"n_samples": 256, "batch_size": 256})])
def test_the_estimate_is_within_a_factor_two_of_the_measured_peak(method, params, tiny_model_dir):
    """In a fresh process (the benchmark's own measurement): the peak resident memory a call adds, sampled every
    2 ms, against the engine's estimate."""
    from benchmarks.memory_estimate import measure

    r = measure("demo", 64, method, params, 1, str(tiny_model_dir))
    assert r["estimate"] / 2 < r["added"] < r["estimate"] * 2, (r["added"] / 2**20, r["estimate"] / 2**20)
