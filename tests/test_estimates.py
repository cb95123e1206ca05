"""Time estimates: the logic with known answers (fake clocks and fake rates; the project measures speed only in the
benchmarks, ``python -m benchmarks --methods none --estimates``)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tests.helpers import make_classifier


# ------------------------------------------------------------------------------------------------- clocks
def test_the_first_unit_is_the_warm_up_and_settle_waits_for_enough_units():
    """A first unit of 10 s, then 1 s units: 7 s left after 3 of 10, as with any number of units to settle on;
    with ``settle=3`` there is no answer until three units after the first."""
    from core.eta import UnitClock

    clock = UnitClock(settle=3)
    assert clock.left(1, 10, now=10.0) is None  # the first unit: the warm-up, 10 s
    assert clock.left(2, 10, now=11.0) is None and clock.left(3, 10, now=12.0) is None  # not settled yet
    assert clock.left(4, 10, now=13.0) == pytest.approx(6.0)
    assert clock.rate(4, now=13.0) == pytest.approx(1.0)


def test_a_staged_run_adds_the_current_steps_measured_rate_to_the_later_steps_expected_seconds():
    from core.eta import StageClock

    clock = StageClock([4.0, 30.0, 6.0])
    assert clock.left(0, 0, 10, now=100.0) == pytest.approx(40.0)  # nothing measured: the expectations
    assert clock.left(0, 1, 10, now=101.0) == pytest.approx(39.0)  # first unit done: its expectation less 1 s run
    assert clock.left(0, 3, 10, now=102.0) == pytest.approx(3.5 + 36.0)  # 0.5 s a unit since, 7 to go
    assert clock.left(1, 0, 20, now=110.0) == pytest.approx(36.0)  # a new step: its own expectation again
    assert clock.step_left(1, 0, 20, now=110.0) is None
    clock.expect([4.0, None, 6.0])
    assert clock.left(0, 0, 10, now=200.0) is None  # a later step with no expectation: not known
    clock.expect([4.0, 30.0, None])
    assert clock.left(2, 0, 5, now=300.0) is None  # the current one has none either
    assert clock.left(1, 0, 5, now=300.0) is None


def test_seconds_per_item_leaves_out_the_warm_up_call_and_takes_the_median_at_its_batch():
    """The warm-up call (10 s) is never timed; at the batch reached (2 items: the budget is spent), the median of
    three calls (2, 4 and 3 s) per item."""
    from core.eta import seconds_per_item

    durations = iter([10.0, 1.0, 2.0, 4.0, 3.0])  # the warm-up, the doubling's one call, then three timed calls
    now = [0.0]

    def run(n):
        now[0] += next(durations)

    assert seconds_per_item(run, 64, budget=0.5, repeats=3, clock=lambda: now[0]) == pytest.approx(1.5)


# ------------------------------------------------------------------------------------------------- LIME's rule
def test_adaptive_lime_is_expected_to_stop_where_its_rule_predicts_not_at_its_maximum():
    """Spearman-Brown from LIME-1000's typical agreement (ρ 0.86): 0.9 needs 1,465 samples, so 15 rounds of 100."""
    from core.explainers import get_method, resolve_params
    from core.explainers.lime_image import TYPICAL_AGREEMENT, expected_samples

    assert TYPICAL_AGREEMENT == (1000, 0.86)
    assert expected_samples(0.9, 2000, 100) == 1500
    assert expected_samples(0.86, 2000, 100) == 1000  # the typical agreement itself: its own sample count
    assert expected_samples(0.95, 2000, 100) == 2000  # 3,093 by the rule: the maximum stops it first
    assert expected_samples(0.5, 2000, 100, superpixels=150) == 300  # never below two samples per superpixel
    assert expected_samples(0.9, 2000, 250) == 1500 and expected_samples(0.9, 2000, 400) == 1600  # whole rounds
    model = make_classifier(3)
    lime = get_method("lime")
    adaptive = resolve_params("lime", model)
    assert lime.expected_cost(adaptive, model, (3, 32, 32)) == 1500
    assert lime.cost(adaptive, model, (3, 32, 32)) == 2000  # progress still counts to the maximum
    fixed = resolve_params("lime", model, num_samples=8000)
    assert lime.expected_cost(fixed, model, (3, 32, 32)) == 8000


def test_adaptive_lime_expects_the_checks_its_rule_makes_on_the_way_to_its_expected_samples():
    """A check after each round from two samples per superpixel on, each over all the samples so far; none beyond
    the expected stop; a fixed count makes one check, which grows in step with its samples (none declared)."""
    from core.explainers import get_method, lime_image, resolve_params

    assert lime_image.check_points(2000, 100, 40, 500) == [100, 200, 300, 400, 500]
    assert lime_image.check_points(2000, 100, 75, 500) == [200, 300, 400, 500]  # 150 samples before the first
    assert lime_image.check_points(250, 100, 20, 2000) == [100, 200, 250]  # the maximum ends the last round
    model, lime, shape = make_classifier(3), get_method("lime"), (3, 32, 32)
    adaptive = resolve_params("lime", model)  # 1,500 samples expected; 50 SLIC segments: checks from 100 on
    assert lime.expected_checks(adaptive, model, shape) == sum(range(100, 1501, 100))
    wider = resolve_params("lime", model, round_size=500)  # 1,500 in 3 rounds: fewer checks
    assert lime.expected_checks(wider, model, shape) == 500 + 1000 + 1500
    assert lime.expected_checks(resolve_params("lime", model, num_samples=8000), model, shape) == 0.0
    assert get_method("grad_cam").expected_checks(resolve_params("grad_cam", model), model, shape) == 0.0


def test_a_check_is_timed_between_rounds_per_checked_sample_and_kept_per_model(monkeypatch):
    """On a fake clock where a round's passes take 10 ms and a check over n samples 2 µs a sample more than that
    when it follows them (the first round of each kind, the warm-up, 1 s): 2e-6 s a checked sample; every check
    follows a round's passes, as in the run; a second ask is not timed again."""
    from core.explainers import lime_image

    now, events = [0.0], []

    def fake_assess(data, y, k, seed=0):
        events.append(("check", len(data)))
        now[0] += 2e-6 * len(data)

    def fake_passes(model, x, batch_size):
        events.append("pass")
        now[0] += 1.0 if events.count("pass") in (2, 2 + lime_image.CHECK_ROUNDS) else 0.01  # each kind's first

    monkeypatch.setattr(lime_image, "assess", fake_assess)
    monkeypatch.setattr(lime_image, "forward_probabilities", fake_passes)
    monkeypatch.setattr(lime_image.time, "perf_counter", lambda: now[0])
    model = make_classifier(3)
    assert lime_image.seconds_per_check(model, (3, 32, 32), 40, 5, 100) == pytest.approx(2e-6)
    checks = [i for i, e in enumerate(events) if e != "pass"]
    assert len(checks) == lime_image.CHECK_ROUNDS and all(events[i - 1] == "pass" for i in checks)
    assert {events[i][1] for i in checks} == {lime_image.CHECK_SAMPLES}
    seen = len(events)
    assert lime_image.seconds_per_check(model, (3, 32, 32), 40, 5, 100) == pytest.approx(2e-6)
    assert len(events) == seen  # kept


def test_a_pass_rate_is_taken_at_the_batch_the_methods_reach_not_at_two_images(monkeypatch):
    """Fake passes on a fake clock (the warm-up call 5 s, never timed). 0.1 s a call and 1 ms an image (a loaded
    machine's thread wake-ups): timed at 2 images it would say 51 ms an image, doubled up to 64 it says 2.6 ms.
    0.1 s an image: the time doubles with the batch, so 4 images are enough. 0.3 s a call: doubling stops at the
    time budget."""
    from core.explainers import timing

    def measured(per_call: float, per_image: float) -> tuple[float, list[int]]:
        now, sizes = [0.0], []

        def run(n):
            sizes.append(n)
            now[0] += 5.0 if len(sizes) == 1 else per_call + per_image * n

        monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
        return timing._rate_at_scale(run), sizes

    rate, sizes = measured(0.1, 0.001)
    assert sizes == [2, 2, 4, 8, 16, 32, 64, 64, 64, 64] and rate == pytest.approx((0.1 + 0.064) / 64)
    rate, sizes = measured(0.0, 0.1)
    assert sizes == [2, 2, 4, 4, 4, 4] and rate == pytest.approx(0.1)
    rate, sizes = measured(0.3, 0.001)  # 0.302 + 0.304 + 0.308 + 0.316 s: past the budget at 16 images
    assert max(sizes) == 16 and rate == pytest.approx((0.3 + 0.016) / 16)


def test_every_method_expects_at_most_its_declared_cost_and_probes_cost_what_they_say():
    from core.explainers import get_method, list_methods, resolve_params

    model, shape = make_classifier(3), (3, 32, 32)
    for name in list_methods(model):
        cls = get_method(name)
        full = resolve_params(name, model)
        assert 0 < cls.expected_cost(full, model, shape) <= cls.cost(full, model, shape), name
        assert cls.passes_for(full) in ("fast", "forward", "gradient"), name
        probe = cls.probe_params(full, 200, shape)
        if probe is not None:  # valid parameters, and about the model images asked for
            resolved = resolve_params(name, model, **probe)
            assert 100 <= cls.expected_cost(resolved, model, shape) <= 400, (name, probe)
    assert get_method("lime").passes_for(resolve_params("lime", model)) == "fast"
    assert get_method("integrated_gradients").passes_for(resolve_params("integrated_gradients", model)) == "gradient"


# ------------------------------------------------------------------------------------------------- the estimator
def test_an_estimate_uses_the_rate_of_the_path_the_method_takes(monkeypatch):
    """With no probe allowed, the estimate is the expected model images times the measured rate of the method's own
    path: LIME's forward passes on the fast path, Integrated Gradients' forward and backward, Score-CAM's torch."""
    from core.explainers import timing

    monkeypatch.setattr(timing, "PROBE_SECONDS", 0.0)
    model = make_classifier(3)
    est = timing.Estimator(model, (3, 32, 32), passes=timing.PassRates(fast=0.001, forward=0.01, gradient=0.1))
    assert est.seconds("lime") == pytest.approx(1500 * 0.001)  # expected samples, not the maximum of 2,000
    assert est.seconds("lime", num_samples=8000) == pytest.approx(8000 * 0.001)
    assert est.seconds("integrated_gradients", n_steps=32) == pytest.approx(34 * 0.1)
    assert est.seconds("integrated_gradients", images=3, n_steps=32) == pytest.approx(3 * 34 * 0.1)
    from core.explainers import resolve_params

    channels = timing.EXPLAINERS.get("score_cam").cost(resolve_params("score_cam", model), model, (3, 32, 32))
    assert est.seconds("score_cam") == pytest.approx(channels * 0.01)  # one pass per feature map, in torch


def test_a_probe_fit_recovers_the_cost_per_call_per_image_and_per_model_image(monkeypatch):
    """Fake calls that take 0.5 s per engine call, 0.2 s per image, 0.01 s per model image and (adaptive LIME's
    checks, timed apart at 1 ms) 1 ms per checked sample, on a fake clock: the probe calls at two sizes (and a chunk
    of images), their checks taken out, give those numbers back, and the estimate follows."""
    from core.explainers import engine, lime_image, timing

    now = [0.0]

    def fake_explain_batch(model, images, method, **params):
        cls = timing.EXPLAINERS.get(method)
        full = engine.resolve_params(method, model, **params)
        n, chunk = len(images), timing.engine_chunk(cls, full, tuple(images.shape[1:]))
        units = cls.expected_cost(full, model, tuple(images.shape[1:]))
        checks = cls.expected_checks(full, model, tuple(images.shape[1:]))  # adaptive LIME's: 1 ms a checked sample
        now[0] += -(-n // chunk) * 0.5 + n * (0.2 + units * 0.01 + checks * 0.001)
        return []

    monkeypatch.setattr(lime_image, "seconds_per_check", lambda model, shape, superpixels, k, round_size: 0.001)
    monkeypatch.setattr(engine, "explain_batch", fake_explain_batch)
    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    model = make_classifier(3)
    passes = timing.PassRates(fast=1e-4, forward=1e-4, gradient=1e-4)  # cheap passes: every probe fits the budget
    ig = timing.measure_method("integrated_gradients", model, (3, 32, 32),
                               engine.resolve_params("integrated_gradients", model), passes)
    assert ig.probed and ig.per_call == pytest.approx(0.5) and ig.per_image == pytest.approx(0.2)
    assert ig.per_unit == pytest.approx(0.01)
    lime = timing.measure_method("lime", model, (3, 32, 32), engine.resolve_params("lime", model), passes)
    assert lime.per_call == 0 and lime.per_image == pytest.approx(0.7) and lime.per_unit == pytest.approx(0.01)
    assert lime.per_check == pytest.approx(0.001) and ig.per_check == 0
    est = timing.Estimator(model, (3, 32, 32), passes=passes)
    # one image: the call, its image, its samples, and its 15 checks (at 100, 200, ... 1,500 samples)
    assert est.seconds("lime") == pytest.approx(0.7 + 1500 * 0.01 + 0.001 * 12000)
    # 10 images in chunks of 4: 3 calls
    assert est.seconds("integrated_gradients", images=10, chunk=4, n_steps=16) == pytest.approx(3 * 0.5 + 10 * (0.2 + 0.18))


def test_a_probe_too_slow_for_the_budget_is_not_run(monkeypatch):
    from core.explainers import engine, timing

    def refuse(*a, **k):
        raise AssertionError("no probe call expected")

    monkeypatch.setattr(engine, "explain_batch", refuse)
    model = make_classifier(3)
    slow = timing.PassRates(fast=10.0, forward=10.0, gradient=10.0)  # 10 s a model image
    rate = timing.measure_method("lime", model, (3, 32, 32), engine.resolve_params("lime", model), slow)
    assert not rate.probed and rate.per_unit == 10.0 and rate.per_image == 0


def test_one_estimator_per_model_keeps_what_it_measured():
    from core.explainers import timing

    model = make_classifier(3)
    assert timing.estimator_for(model, (3, 32, 32)) is timing.estimator_for(model, (3, 32, 32))
    assert timing.estimator_for(model, (3, 32, 32)) is not timing.estimator_for(model, (3, 16, 16))


# ------------------------------------------------------------------------------------------------- the faces
def test_the_final_evaluation_of_a_training_is_estimated_from_its_passes():
    from core.modelling.ood import MAX_FIT_IMAGES
    from core.modelling.training import _final_evaluation_seconds

    # test predicted (1,000 x 2 ms), then the features of the training images, val and test (1 ms each)
    assert _final_evaluation_seconds((0.002, 0.001), 4000, 500, 1000) == pytest.approx(2.0 + 5.5)
    assert _final_evaluation_seconds((0.0, 0.001), 10 * MAX_FIT_IMAGES, 0, 0) == pytest.approx(MAX_FIT_IMAGES * 0.001)


def test_quality_stages_are_estimated_from_the_passes_each_metric_makes(monkeypatch):
    from core.explainers import timing
    from core.quality import evaluation, get_metric

    passes = timing.PassRates(fast=0.001, forward=0.01, gradient=0.1)
    deletion = get_metric("deletion")()
    assert evaluation.metric_seconds(deletion, "grad_cam", 10, passes) == pytest.approx(10 * 21 * 0.001)
    assert evaluation.metric_seconds(get_metric("pointing_game")(), "grad_cam", 10, passes) == 0.0
    assert evaluation.metric_seconds(get_metric("pointing_game")(), "grad_cam", 10, passes, has_masks=False) == 0.0
    assert evaluation.metric_seconds(get_metric("max_sensitivity")(), "grad_cam", 10, passes) is None

    class Fake:
        of = passes.of

        def seconds(self, method, images=1, **params):
            return {"grad_cam": 1.0, "saliency": 2.0}[method] * images

    monkeypatch.setattr(timing, "estimator_for", lambda model, shape: Fake())
    images = np.zeros((10, 3, 32, 32), dtype=np.float32)
    todo = {"grad_cam": {"deletion", "sparseness"}, "saliency": {"sparseness"}}  # saliency's deletion is stored
    out = evaluation.stage_seconds(None, images, ["grad_cam", "saliency"], ["deletion", "sparseness"], {},
                                   {"deletion": {"replacement": "blur"}, "sparseness": {}}, todo)
    assert out == pytest.approx([10.0, 10 * 21 * 0.001, 0.0, 20.0, 0.0, 0.0])


def test_a_quality_run_gives_its_stage_estimates_to_a_progress_that_takes_them(monkeypatch):
    """The plan comes once, before the first report, one expectation per stage, from the estimator's rates."""
    from core.datasets.base import ArrayDataset, DatasetInfo
    from core.explainers import timing
    from core.quality import evaluate

    class Fake:
        def of(self, path):
            return 0.001

        def seconds(self, method, images=1, **params):
            return 0.5 * images

    monkeypatch.setattr(timing, "estimator_for", lambda model, shape: Fake())
    rng = np.random.default_rng(0)
    info = DatasetInfo("tiny", "Tiny", ("a", "b", "c"), 3, 32, "test", "none")
    ds = ArrayDataset(info, "test", rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), np.arange(6) % 3)
    planned, reports = [], []

    def progress(stage, stages, label, done, total):
        reports.append(stage)
        assert planned, "the plan comes before the first report"

    progress.plan = planned.append
    evaluate(make_classifier(3), ds, ["saliency", "input_x_gradient"], ["deletion", "sparseness"], n=3,
             progress=progress)
    deletion = 3 * 21 * 0.001  # 3 images x 21 steps through the fast path
    assert planned == [pytest.approx([1.5, deletion, 0.0, 1.5, deletion, 0.0])]
    assert 0 < max(reports) < len(planned[0])  # the stages reported are the stages planned


def test_the_staged_bar_says_the_whole_runs_time_left_when_every_step_is_expected():
    from ui.progress import UNITS, staged

    messages = []
    report = staged(lambda done, total, message: messages.append((done, total, message)), [20.0, 30.0])
    report(0, 2, "Grad-CAM", 0, 10)
    assert messages[-1][:2] == (0, 2 * UNITS) and messages[-1][2].endswith("· about 50 s left")
    report.plan([20.0, None])  # a step that cannot be estimated: the current step's own time left, once measured
    report(1, 2, "LIME", 0, 10)
    assert messages[-1][2] == "LIME (step 2 of 2): 0/10"


def test_the_sidebar_note_names_only_the_chosen_slow_methods_per_image(monkeypatch):
    from ui import cache, pickers

    asked = []

    class Fake:
        def seconds(self, method, images=1, **params):
            asked.append((method, images, params))
            return {"lime": 2.4, "integrated_gradients": 0.2, "occlusion": 9.0}[method]

    monkeypatch.setattr(cache, "estimator", lambda path, sha: Fake())
    sel = SimpleNamespace(model_path="m", card=SimpleNamespace(weights_sha256="x"))
    note = pickers.slow_methods_note(sel, {"lime": {"mode": "adaptive"}, "integrated_gradients": {}})
    assert note == "Slow on this model (estimated, per image): LIME ~2 s"
    assert [a[0] for a in asked] == ["lime", "integrated_gradients"] and all(a[1] == 1 for a in asked)
    assert asked[0][2] == {"mode": "adaptive"}
    assert pickers.slow_methods_note(sel, {"integrated_gradients": {}}) == ""


def test_the_readmes_estimates_table_is_the_benchmarks_results_file():
    """The README's table is generated from ``benchmarks/results/estimates.csv`` (never typed): after a new run of
    ``python -m benchmarks --methods none --estimates``, paste ``benchmarks.estimates.table(read())`` again."""
    from benchmarks.estimates import RESULTS, read, table

    if not RESULTS.is_file():
        pytest.skip(f"{RESULTS} not written yet")
    readme = (RESULTS.parents[2] / "README.md").read_text(encoding="utf-8")
    assert table(read()) in readme
