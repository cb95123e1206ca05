"""The batched engine: batch = images one by one, targets, seeds, progress, cancel, declared effects, replicas.

Every test that concerns methods is generated from the registry, so a new method is covered by adding it.
"""
import random
import threading

import numpy as np
import pytest
import torch
from torch import nn

from core import Cancelled, CancelToken, ParameterError, explain, explain_batch, get_method, list_methods, predict
from core.datasets import shapes
from core.explainers import MODEL_EFFECTS, resolve_params
from core.modelling import sharing
from core.modelling.architectures import traits_of
from tests.helpers import hooks_on, make_classifier, make_vit, refused

METHODS = list_methods()
#: settings that keep the slow methods quick on 32 px test images
FAST = {"lime": {"num_samples": 60}, "shap_partition": {"max_evals": 60}, "shap_gradient": {"n_samples": 8},
        "smoothgrad": {"n_samples": 4}, "smoothgrad_sq": {"n_samples": 4}, "gradient_shap": {"n_samples": 8},
        "integrated_gradients": {"n_steps": 8}, "score_cam": {}, "ablation_cam": {}}


def _images(n: int, size: int = 32, seed: int = 5) -> torch.Tensor:
    return torch.from_numpy(shapes.generate(n, seed=seed, size=size)[0]).permute(0, 3, 1, 2).float() / 255


def _model(kind: str):
    return make_classifier(3, num_classes=4, seed=2) if kind == "cnn" else make_vit(3, num_classes=4, seed=2)


@pytest.fixture(scope="module", params=["cnn", "vit"])
def model_and_images(request):
    """Every engine test on a CNN and on a tiny Vision Transformer (methods that do not apply are refused)."""
    return _model(request.param), _images(3)


def _exact_in_batch(method: str) -> bool:
    """Methods that run image by image in the engine give bit-identical maps in a batch."""
    cls = get_method(method)
    return not cls.batched or "global_rng" in cls.effects(resolve_params(method, make_classifier(3), **FAST.get(method, {})))


@pytest.mark.parametrize("method", METHODS)
def test_batch_equals_images_one_by_one(method, model_and_images):
    if refused(model_and_images[0], method):
        return
    model, x = model_and_images
    kw = FAST.get(method, {})
    if "seed" in resolve_params(method, model):
        kw = {**kw, "seed": 11}
    batch = explain_batch(model, x, method, **kw)
    assert len(batch) == 3
    for i, e in enumerate(batch):
        if "seed" in kw:
            assert e.params["seed"] == 11 + i  # one seed per image, derived from the call's seed
        alone = explain(model, x[i], method, **{**kw, **({"seed": e.params["seed"]} if "seed" in kw else {})})
        assert e.target == alone.target == int(predict(model, x[i]).argmax())
        assert e.params == alone.params and e.signed == alone.signed and e.flat == alone.flat
        if _exact_in_batch(method):
            assert np.array_equal(e.attribution, alone.attribution), method
        else:  # a batched forward pass may sum in another order: equal to float32 precision (occlusion takes
            # differences of nearly equal logits, which magnifies that to ~3e-5 of the map's range)
            scale = max(1e-12, float(np.abs(alone.attribution).max()))
            np.testing.assert_allclose(e.attribution / scale, alone.attribution / scale, atol=1e-4, err_msg=method)
        assert e.extras.keys() == alone.extras.keys()
        for k, v in alone.extras.items():
            assert e.extras[k] == pytest.approx(v, rel=1e-4, abs=1e-6) if isinstance(v, float) else e.extras[k] == v
    assert hooks_on(model) == 0 and not model.training


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion", "deeplift"])
def test_noise_baseline_is_per_image_seeded_in_batches(method, model_and_images):
    """A batched method with the noise baseline: image i's noise comes from seed + i, whatever the batch."""
    model, x = model_and_images
    if refused(model, method):
        return
    kw = {**FAST.get(method, {}), "baseline": "noise", "seed": 4}
    batch = explain_batch(model, x, method, **kw)
    for i in range(3):
        alone = explain(model, x[i], method, **{**kw, "seed": 4 + i})
        np.testing.assert_allclose(batch[i].attribution, alone.attribution, rtol=1e-4, atol=1e-6)
    # another seed really gives another map
    assert not np.allclose(explain_batch(model, x, method, **{**kw, "seed": 9})[0].attribution, batch[0].attribution)


def test_chunk_size_does_not_change_the_maps(model_and_images):
    model, x = model_and_images
    whole = explain_batch(model, x, "grad_cam")
    for chunk in (1, 2):
        for a, b in zip(explain_batch(model, x, "grad_cam", chunk_size=chunk), whole):
            np.testing.assert_allclose(a.attribution, b.attribution, atol=1e-5)
    with pytest.raises(ParameterError, match="chunk_size"):
        explain_batch(model, x, "grad_cam", chunk_size=0)


def test_targets_none_int_and_per_image(model_and_images):
    model, x = model_and_images
    predicted = [int(predict(model, img).argmax()) for img in x]
    for method in ("grad_cam", "saliency"):  # one finds the targets itself, one is given them by the engine
        assert [e.target for e in explain_batch(model, x, method)] == predicted
        assert [e.target for e in explain_batch(model, x, method, targets=2)] == [2, 2, 2]
        assert [e.target for e in explain_batch(model, x, method, targets=[3, 0, 1])] == [3, 0, 1]
        assert [e.target for e in explain_batch(model, x, method, targets=np.array([1, 1, 0]))] == [1, 1, 0]
        with pytest.raises(ParameterError, match="3 images"):
            explain_batch(model, x, method, targets=[0, 1])
        with pytest.raises(ParameterError, match=r"\[0, 3\], got 4"):
            explain_batch(model, x, method, targets=[0, 4, 1])
        with pytest.raises(ParameterError, match="class index"):
            explain_batch(model, x, method, targets=["a", "b", "c"])
    # a per-image target steers each map: the same image explained for two classes gives two maps
    two = explain_batch(model, torch.stack([x[0], x[0]]), "grad_cam", targets=[0, 1])
    assert not np.allclose(two[0].attribution, two[1].attribution)


def test_bad_image_batches_are_refused(model_and_images):
    model, _ = model_and_images
    for bad in (torch.rand(32, 32), torch.rand(0, 3, 32, 32), torch.rand(1, 1, 3, 32, 32)):
        with pytest.raises(ValueError, match="expected images"):
            explain_batch(model, bad, "saliency")


def _run_with_progress(model, x, method, **kw):
    seen = []
    result = explain_batch(model, x, method, progress=lambda d, t: seen.append((d, t)), **FAST.get(method, {}), **kw)
    return result, seen


@pytest.mark.parametrize("method", METHODS)
def test_progress_counts_model_images_to_the_total(method, model_and_images):
    model, x = model_and_images
    if refused(model, method):
        return
    _, seen = _run_with_progress(model, x, method, chunk_size=1)
    cls = get_method(method)
    total = 3 * cls.cost(resolve_params(method, model, **FAST.get(method, {})), model, tuple(x.shape[1:]))
    assert seen and all(t == total for _, t in seen)
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == total and len(set(done)) >= 3  # at least one step per image


@pytest.mark.parametrize("method", METHODS)
def test_cancel_stops_the_call_and_leaves_the_model_clean(method, model_and_images):
    model, x = model_and_images
    if refused(model, method):
        return
    token = CancelToken()
    calls = []

    def progress(done, total):
        calls.append(done)
        token.cancel()  # the user presses Cancel as soon as the first progress arrives

    with pytest.raises(Cancelled, match="cancelled after"):
        explain_batch(model, x, method, progress=progress, cancel=token, chunk_size=1, **FAST.get(method, {}))
    assert len(calls) == 1  # nothing ran after the check that followed the first progress
    assert hooks_on(model) == 0 and not model.training
    assert all(p.grad is None for p in model.parameters())
    # the model and its replicas still give the uncancelled result afterwards
    kw = FAST.get(method, {})
    np.testing.assert_array_equal(explain(model, x[0], method, **kw).attribution,
                                  explain(model, x[0], method, **kw).attribution)


def test_a_cancelled_token_stops_before_any_work(model_and_images):
    model, x = model_and_images
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled, match="after 0 of"):
        explain_batch(model, x, "lime", cancel=token)


def test_an_error_in_the_progress_callback_is_the_callers_own(model_and_images):
    """A UI that stops its script from inside the callback must get its own exception back, not an AttributionError."""
    model, x = model_and_images

    class Stop(Exception):
        pass

    def progress(done, total):
        raise Stop()

    for method in ("saliency", "lime"):
        with pytest.raises(Stop):
            explain_batch(model, x, method, progress=progress, **FAST.get(method, {}))


class Spy(nn.Module):
    """Records, at each forward pass of *this* object, how many hooks are on it (replicas record elsewhere)."""

    seen: dict[int, list[int]] = {}

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.target_layer = "inner." + inner.target_layer

    def forward(self, x):
        Spy.seen.setdefault(id(self), []).append(hooks_on(self))
        return self.inner(x)


@pytest.mark.parametrize("method", METHODS)
def test_declared_effects_cover_what_the_method_does(method, model_and_images):
    """A method that declares no model effect leaves no trace on the shared model, even during the call; one
    that declares one never touches the shared model; one that declares no global RNG use draws none."""
    if refused(model_and_images[0], method):
        return
    inner, x = model_and_images
    model = Spy(_model("vit" if "tokens" in traits_of(inner) else "cnn")).eval()
    Spy.seen.clear()
    kw = FAST.get(method, {})
    effects = get_method(method).effects(resolve_params(method, model, **kw))
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    explain_batch(model, x, method, **kw)
    # hooks never seen on the shared model's forward passes, no gradients left on its parameters
    assert max(Spy.seen.get(id(model), [0])) == 0, f"{method} hooked the shared model"
    assert all(p.grad is None for p in model.parameters()), f"{method} wrote .grad on the shared model"
    if effects & MODEL_EFFECTS:
        assert sharing.replicas_made(model) >= 1 and any(k != id(model) for k in Spy.seen)  # it ran on a replica
    else:
        assert sharing.replicas_made(model) == 0 and list(Spy.seen) == [id(model)]
    # the caller's global generators are where they were (drawn-from ones are seeded and restored by the engine)
    assert torch.equal(torch.get_rng_state(), states[0]) and np.array_equal(np.random.get_state()[1], states[1])
    assert random.getstate() == states[2]


def test_a_replica_follows_changes_to_its_model():
    """Train the model in place (or load other weights): the next hooked call sees the new weights, not a stale copy."""
    model = make_classifier(3, num_classes=4, seed=2)
    x = _images(1)[0]
    before = explain(model, x, "grad_cam", target=1).attribution
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    after = explain(model, x, "grad_cam", target=1).attribution
    fresh = make_classifier(3, num_classes=4, seed=2)
    fresh.load_state_dict(model.state_dict())
    np.testing.assert_allclose(after, explain(fresh, x, "grad_cam", target=1).attribution, atol=1e-6)
    assert not np.allclose(before, after)


def test_replicas_are_bounded_and_reused():
    model = make_classifier(3, num_classes=4, seed=2)
    x = _images(1)[0]
    errors = []
    barrier = threading.Barrier(sharing.MAX_REPLICAS + 3)

    def work():
        try:
            barrier.wait()
            for _ in range(3):
                explain(model, x, "score_cam", batch_size=8)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(sharing.MAX_REPLICAS + 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert 1 <= sharing.replicas_made(model) <= sharing.MAX_REPLICAS
    assert hooks_on(model) == 0


def test_long_lime_does_not_make_other_sessions_wait():
    """While one session runs a LIME of seconds on a shared model, four others predict and run Grad-CAM on
    it: each gets exactly its serial result, nothing raises, no hook is left, and none waits for the LIME."""
    import time

    model = make_classifier(3, num_classes=4, seed=3)
    images = _images(4, size=64, seed=8)
    serial_pred = [predict(model, img) for img in images]
    serial_cam = [explain(model, img, "grad_cam").attribution for img in images]
    started, errors, latencies, results = threading.Event(), [], [], {}
    lime_seconds = []

    def lime() -> None:
        try:
            t0 = time.perf_counter()
            explain(model, images[0], "lime", num_samples=3000, batch_size=64, seed=0,
                    progress=lambda d, t: started.set())
            lime_seconds.append(time.perf_counter() - t0)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    def session(k: int) -> None:
        try:
            for rep in range(4):
                i = (k + rep) % 4
                t0 = time.perf_counter()
                if k % 2:
                    results[("pred", k, rep)] = (i, predict(model, images[i]))
                else:
                    results[("cam", k, rep)] = (i, explain(model, images[i], "grad_cam").attribution)
                latencies.append(time.perf_counter() - t0)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    long = threading.Thread(target=lime)
    long.start()
    assert started.wait(60)
    others = [threading.Thread(target=session, args=(k,)) for k in range(4)]
    for t in others:
        t.start()
    for t in others:
        t.join()
    lime_running_meanwhile = long.is_alive()
    long.join()
    assert not errors, errors
    assert lime_running_meanwhile  # the others really ran while the LIME did
    for (kind, _, _), (i, value) in results.items():
        expected = serial_pred[i] if kind == "pred" else serial_cam[i]
        assert np.array_equal(value, expected), kind  # bit for bit
    assert len(results) == 16 and hooks_on(model) == 0
    assert lime_seconds[0] > 1.0  # a LIME long enough for waiting to show
    assert np.median(latencies) < lime_seconds[0] / 10 and max(latencies) < lime_seconds[0] / 3


@pytest.mark.parametrize("method", [m for m in METHODS if get_method(m).family == "CAM"])
def test_cams_backward_only_to_their_layer_and_give_the_librarys_map_exactly(method, model_and_images):
    """The CAM family freezes the weights outside the target layer on its replica (autograd then stops at the
    layer): the maps are pytorch-grad-cam's own, bit for bit, and the replica's flags are restored."""
    if refused(model_and_images[0], method):
        return
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from core.modelling.architectures import get_layer

    model, x = model_and_images
    ours = explain_batch(model, x, method, targets=[0, 1, 2])
    kwargs = {}
    if "tokens" in traits_of(model):  # a transformer: the library's own token reshape (and ViT ablation layer)
        from pytorch_grad_cam.ablation_layer import AblationLayerVit

        from core.modelling.architectures import tokens_to_grid

        kwargs = {"reshape_transform": tokens_to_grid, **({"ablation_layer": AblationLayerVit()} if method == "ablation_cam" else {})}
    with get_method(method).cam_class(model=model, target_layers=[get_layer(model, model.target_layer)], **kwargs) as cam:
        reference = cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(t) for t in (0, 1, 2)])
    for e, r in zip(ours, reference):
        if kwargs:  # attention's backward without weight gradients sums in another order: equal to float precision
            np.testing.assert_allclose(e.attribution, r.astype(np.float32), rtol=0, atol=1e-5, err_msg=method)
        else:
            assert np.array_equal(e.attribution, r.astype(np.float32)), method
    pool = sharing._pool(model)
    assert pool.idle and all(p.requires_grad for r in pool.idle for p in r.parameters())
    model.zero_grad(set_to_none=True)  # the reference call above wrote .grad on the test's own model


def test_seeded_methods_on_two_models_in_parallel_give_the_serial_maps():
    """Every global-RNG method is declared and isolated: seeded maps do not change when another model is
    explained at the same time (SHAP Partition used to draw from numpy's global RNG outside the lock)."""
    models = [make_classifier(3, num_classes=4, seed=s) for s in (1, 2)]
    x = _images(2)
    work = [("smoothgrad", {"n_samples": 4, "seed": 3}), ("gradient_shap", {"n_samples": 8, "seed": 3}),
            ("shap_gradient", {"n_samples": 8, "seed": 3}), ("shap_partition", {"max_evals": 60}),
            ("lime", {"num_samples": 60, "seed": 3}), ("integrated_gradients", {"n_steps": 8, "baseline": "noise", "seed": 3})]
    serial = {(k, m): [e.attribution for e in explain_batch(models[k], x, m, **kw)] for k in (0, 1) for m, kw in work}
    results, errors = {}, []
    barrier = threading.Barrier(2)

    def run(k: int) -> None:
        try:
            barrier.wait()
            for _ in range(2):
                for m, kw in work:
                    results[(k, m)] = [e.attribution for e in explain_batch(models[k], x, m, **kw)]
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for key, maps in serial.items():
        for a, b in zip(results[key], maps):
            assert np.array_equal(a, b), key


@pytest.mark.parametrize("method", METHODS)
def test_another_librarys_hooks_on_the_model_never_see_the_engines_passes(method):
    """A notebook user ran pytorch-grad-cam on the model, so its forward hooks are on it, with its activations
    stored. Every method runs on a replica without those hooks (the same map as on a clean model), the replica is
    reused instead of copied again, and the user's object keeps its activations and still works."""
    from pytorch_grad_cam import GradCAM

    model = make_classifier(3, num_classes=4, seed=2)
    clean = make_classifier(3, num_classes=4, seed=2)
    x = _images(2)
    layer = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
    cam = GradCAM(model=model, target_layers=[layer])
    users_map = cam(input_tensor=x[:1], targets=None)
    stored = [a.clone() for a in cam.activations_and_grads.activations]
    hooks = hooks_on(model)
    assert hooks > 0
    kw = {**FAST.get(method, {}), **({"seed": 0} if get_method(method).stochastic else {})}
    if refused(model, method):
        return
    for _ in range(2):
        got = explain_batch(model, x, method, targets=1, **kw)
    assert sharing.replicas_made(model) == 1  # one replica, reused: not a copy per call
    expected = explain_batch(clean, x, method, targets=1, **kw)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g.attribution, e.attribution)
    assert len(cam.activations_and_grads.activations) == len(stored)
    assert all(torch.equal(a, b) for a, b in zip(cam.activations_and_grads.activations, stored))
    assert hooks_on(model) == hooks  # the user's hooks are still there, and nothing else is
    np.testing.assert_allclose(cam(input_tensor=x[:1], targets=None), users_map, rtol=1e-5, atol=1e-6)
    cam.activations_and_grads.release()
