"""Metrics on a hand-made prediction set equal values computed by hand (and scikit-learn where it has them)."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.modelling.classification import HEADLINE, classification_metrics, confident_mistakes, curves, reliability

CLASSES = ["a", "b", "c"]
Y = np.array([0, 0, 1, 1, 2, 2])
P = np.array([[.8, .1, .1],   # a -> a (0.8)
              [.3, .6, .1],   # a -> b (0.6) wrong
              [.2, .7, .1],   # b -> b (0.7)
              [.1, .8, .1],   # b -> b (0.8)
              [.1, .2, .7],   # c -> c (0.7)
              [.5, .1, .4]])  # c -> a (0.5) wrong


def test_headline_and_per_class_numbers_equal_hand_computed_values():
    m = classification_metrics(Y, P, CLASSES)
    assert m["n"] == 6 and m["accuracy"] == pytest.approx(4 / 6)
    # recalls 1/2, 2/2, 1/2; precisions 1/2, 2/3, 1/1; F1 1/2, 4/5, 2/3
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert m["macro_precision"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert m["macro_recall"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["weighted_f1"] == pytest.approx(m["macro_f1"])  # equal supports
    assert m["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1-score": 0.8, "support": 2})
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["chance_accuracy"] == pytest.approx(2 / 6) and m["chance_balanced_accuracy"] == pytest.approx(1 / 3)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(Y, P, multi_class="ovr", average="macro"))
    assert set(HEADLINE) <= set(m)


def test_weighted_averages_follow_the_supports():
    y = np.array([0, 0, 0, 1])
    p = np.array([[.9, .1], [.9, .1], [.2, .8], [.3, .7]])  # recall a 2/3, b 1; precision a 1, b 1/2
    m = classification_metrics(y, p, ["a", "b"])
    assert m["weighted_recall"] == pytest.approx(0.75 * 2 / 3 + 0.25 * 1)
    assert m["weighted_precision"] == pytest.approx(0.75 * 1 + 0.25 * 0.5)
    assert m["chance_accuracy"] == pytest.approx(0.75)


def test_binary_auc_is_the_classic_hand_example():
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    m = classification_metrics(y, np.stack([1 - p1, p1], 1), ["neg", "pos"])
    assert m["roc_auc"] == pytest.approx(0.75)  # 3 of the 4 positive/negative pairs are ordered right


def test_expected_calibration_error_by_hand():
    # top-class confidences .8 .6 .7 .8 .7 .5, right 1 0 1 1 1 0: bins (.4,.5] (.5,.6] (.6,.7] (.7,.8]
    # ECE = 1/6*|0-.5| + 1/6*|0-.6| + 2/6*|1-.7| + 2/6*|1-.8| = 0.35
    r = reliability(Y, P)
    assert r["ece"] == pytest.approx(0.35)
    assert r["count"] == [0, 0, 0, 0, 1, 1, 2, 2, 0, 0]
    assert r["accuracy"][6] == 1.0 and r["confidence"][4] == pytest.approx(0.5)
    assert classification_metrics(Y, P, CLASSES)["ece"] == pytest.approx(0.35)
    perfect = reliability(np.array([0, 1]), np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert perfect["ece"] == 0.0


def test_curves_per_class_agree_with_scikit_learn_and_skip_absent_classes():
    c = curves(Y, P, CLASSES)
    assert [r["class"] for r in c["roc"]] == CLASSES
    for i, r in enumerate(c["roc"]):
        assert r["auc"] == pytest.approx(roc_auc_score(Y == i, P[:, i]))
        assert r["fpr"][0] == 0 and r["tpr"][-1] == 1
    assert c["pr"][1]["prevalence"] == pytest.approx(1 / 3)
    y = np.array([0, 0, 1, 1, 1, 1])  # class c absent
    assert [r["class"] for r in curves(y, P, CLASSES)["roc"]] == ["a", "b"]
    assert classification_metrics(y, P, CLASSES)["roc_auc"] is None  # undefined, not a crash


def test_confident_mistakes_most_confident_first_and_filtered():
    assert confident_mistakes(Y, P).tolist() == [1, 5]  # 0.6 before 0.5
    assert confident_mistakes(Y, P, true_class=2).tolist() == [5]
    assert confident_mistakes(Y, P, predicted_class=1).tolist() == [1]
    assert confident_mistakes(Y, P, true_class=1).tolist() == []
    assert confident_mistakes(Y, P, limit=1).tolist() == [1]


@pytest.mark.parametrize("bad,match", [
    (np.full((6, 3), np.nan), "NaN"), (P[:, :2], r"\(6, 3\)"), (np.zeros((0, 3)), r"\(6, 3\)"),
])
def test_bad_predictions_are_refused_precisely(bad, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(Y, bad, CLASSES)
