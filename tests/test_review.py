"""Pieces of the review: class matching, which images a gallery shows, scores with CIs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fracture_lit.evaluation.predictions import SplitPredictions
from fracture_lit.evaluation.scoring import score, score_subgroups
from fracture_lit.metrics import binary_metrics_at_threshold
from fracture_lit.models.loading import ClassMismatchError, match_classes


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (["intact", "fractured"], ["non_fractured", "fractured"]),
        (["non_fractured", "fractured"], ["not fractured", "Fractured"]),
        (["Comminuted fracture", "Greenstick"], ["comminuted_fracture", "greenstick"]),
    ],
)
def test_classes_that_mean_the_same_match(model, data) -> None:
    match_classes(model, data, "data")


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (["intact", "fractured"], ["fractured", "intact"]),  # swapped: labels would flip
        (["intact", "fractured"], ["a", "b", "c"]),
        (["Greenstick", "Comminuted"], ["Comminuted", "Greenstick"]),
        (["cat", "dog"], ["non_fractured", "fractured"]),
    ],
)
def test_classes_that_differ_are_refused_with_both_lists(model, data) -> None:
    with pytest.raises(ClassMismatchError) as info:
        match_classes(model, data, "data=somewhere")
    assert str(model) in str(info.value) and str(data) in str(info.value)


def _pred(labels, p_pos, threshold=0.5, meta=None) -> SplitPredictions:
    p_pos = np.asarray(p_pos, dtype=np.float64)
    return SplitPredictions(
        split="test",
        class_names=["intact", "fractured"],
        paths=[f"/x/{i}.png" for i in range(len(labels))],
        labels=np.asarray(labels),
        probs=np.stack([1 - p_pos, p_pos], axis=1),
        threshold=threshold,
        meta=meta or [{} for _ in labels],
    )


def test_most_confident_mistakes_come_first() -> None:
    pred = _pred([0, 1, 0, 1, 0], [0.9, 0.2, 0.6, 0.45, 0.1], threshold=0.5)
    # wrong: #0 (p=0.9 for fractured, truly intact), #1 (0.8 for intact), #2 (0.6), #3 (0.55)
    assert pred.misclassified() == [0, 1, 2, 3]
    assert pred.predicted.tolist() == [1, 0, 1, 0, 0]
    # exactly at the threshold is negative, as in torchmetrics and the Youden threshold
    assert _pred([1], [0.5], threshold=0.5).predicted.tolist() == [0]


def test_fixed_set_alternates_classes_in_split_order() -> None:
    pred = _pred([1, 1, 1, 0, 1, 0], [0.5] * 6)
    assert pred.fixed_set(4) == [3, 0, 5, 1]
    assert pred.fixed_set(10) == [3, 0, 5, 1, 2, 4]


def test_score_matches_the_metric_functions_and_brackets_them() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    p = np.clip(labels * 0.3 + rng.random(200) * 0.7, 0, 1)
    pred = _pred(labels, p, threshold=0.42)
    scored = score(pred, n_bootstrap=200)
    direct = binary_metrics_at_threshold(torch.tensor(p), torch.tensor(labels), 0.42)
    for key, value in direct.items():
        assert scored["metrics"][f"eval/{key}"] == pytest.approx(value)
        point, low, high = scored["ci95"][key]
        assert low <= point <= high
    assert scored["metrics"]["eval/threshold"] == 0.42
    tn, fp = scored["confusion_matrix"][0]
    fn, tp = scored["confusion_matrix"][1]
    assert tp / (tp + fn) == pytest.approx(direct["recall"])
    assert tn + fp + fn + tp == 200


def test_subgroups_get_their_own_scores() -> None:
    labels = [0, 1] * 10 + [1] * 3
    p = [0.2, 0.8] * 10 + [0.9] * 3
    meta = [{"region": "hand"}] * 20 + [{"region": "hip"}] * 3
    regions = score_subgroups(_pred(labels, p, meta=meta), n_bootstrap=50)
    assert regions["hand"]["n"] == 20 and regions["hand"]["metrics"]["region/auroc"] == 1.0
    assert "ci95" in regions["hand"]
    hip = regions["hip"]  # 3 images, one class: no interval, no AUROC
    assert hip["n"] == 3 and "ci95" not in hip and "region/auroc" not in hip["metrics"]
    assert hip["metrics"]["region/recall"] == 1.0
