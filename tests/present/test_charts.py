"""Plotly figures: what the colours say must be true."""
import numpy as np

from core.present import charts

CLASSES = ["circle", "square", "triangle", "cross"]


def _colours(proba, highlight):
    bar = charts.topk_probabilities(np.array(proba), CLASSES, k=4, highlight=highlight).data[0]
    return dict(zip(bar.y, bar.marker.color))


def test_topk_right_prediction_has_no_red():
    c = _colours([0.1, 0.7, 0.1, 0.1], highlight=1)
    assert c["square"] == charts.TRUE_COLOUR and charts.WRONG_COLOUR not in c.values()


def test_topk_wrong_prediction_is_red_and_true_class_green():
    c = _colours([0.1, 0.7, 0.15, 0.05], highlight=2)
    assert c["square"] == charts.WRONG_COLOUR and c["triangle"] == charts.TRUE_COLOUR
    assert c["circle"] == c["cross"] == charts.OTHER_COLOUR


def test_topk_without_a_label_marks_nothing():
    assert set(_colours([0.1, 0.7, 0.15, 0.05], highlight=None).values()) == {charts.OTHER_COLOUR}
