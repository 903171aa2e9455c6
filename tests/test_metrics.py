"""Tests for fracture_lit.metrics against hand-computed confusion matrices and ROC curves."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics import MetricCollection
from torchmetrics.functional.classification import binary_accuracy, binary_auroc

from fracture_lit.metrics import (
    METRIC_KEYS,
    binary_metrics_at_threshold,
    build_confusion_matrix,
    build_metrics,
    metric_inputs,
)
from fracture_lit.stats.bootstrap import bootstrap_ci
from fracture_lit.stats.youden import YoudenResult, youden_threshold

# --------------------------------------------------------------------------- fixtures


def known_binary() -> tuple[torch.Tensor, torch.Tensor]:
    """TP=8, FN=2, TN=6, FP=4 with probabilities 0.9 (predicted positive) / 0.1."""
    probs = torch.tensor([0.9] * 8 + [0.1] * 2 + [0.1] * 6 + [0.9] * 4)
    targets = torch.tensor([1] * 8 + [1] * 2 + [0] * 6 + [0] * 4)
    return probs, targets


def kappa_from_confusion(cm: torch.Tensor) -> float:
    """Cohen's kappa = (p_o - p_e) / (1 - p_e), written out independently of torchmetrics."""
    cm = cm.double()
    total = cm.sum()
    p_o = cm.diag().sum() / total
    p_e = (cm.sum(dim=1) * cm.sum(dim=0)).sum() / total**2
    return float((p_o - p_e) / (1 - p_e))


TP, FN, TN, FP = 8, 2, 6, 4
EXPECTED_BINARY = {
    "acc": 0.7,
    "recall": 0.8,
    "specificity": 0.6,
    "precision": 8 / 12,
    "f1": 2 * (8 / 12) * 0.8 / (8 / 12 + 0.8),
    "balanced_acc": 0.7,
    "kappa": kappa_from_confusion(torch.tensor([[TN, FP], [FN, TP]])),
}

# 3 classes: true counts (4, 3, 3); rows = true, cols = predicted.
MC_TARGETS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
MC_PREDS = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 0])
MC_CONFUSION = torch.tensor([[3, 1, 0], [0, 2, 1], [1, 0, 2]])


def mc_logits() -> torch.Tensor:
    return 3.0 * torch.nn.functional.one_hot(MC_PREDS, 3).float()


# --------------------------------------------------------------------------- binary collection


def test_kappa_hand_value_is_point_four() -> None:
    # p_o = 0.7, p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5 -> kappa = 0.4; guards the helper itself.
    assert EXPECTED_BINARY["kappa"] == pytest.approx(0.4)


def test_binary_collection_known_confusion() -> None:
    probs, targets = known_binary()
    collection = build_metrics(2, prefix="val/")
    assert isinstance(collection, MetricCollection)
    assert set(collection.keys()) == {f"val/{k}" for k in METRIC_KEYS}
    # update in two uneven batches to exercise accumulation
    collection.update(probs[:7], targets[:7])
    collection.update(probs[7:], targets[7:])
    out = {k.removeprefix("val/"): float(v) for k, v in collection.compute().items()}
    for key, expected in EXPECTED_BINARY.items():
        assert out[key] == pytest.approx(expected, abs=1e-6), key
    # each predicted-positive group is a tie: AUROC = P(pos score > neg score) + 0.5 * P(tie)
    # = 0.8*0.6 + 0.5*(0.8*0.4 + 0.2*0.6) = 0.7
    assert out["auroc"] == pytest.approx(0.7, abs=1e-6)


@pytest.mark.filterwarnings("ignore:No negative samples:UserWarning")
def test_binary_collection_from_logits_and_clone_reset() -> None:
    probs, targets = known_binary()
    logits = torch.stack([torch.zeros_like(probs), torch.logit(probs)], dim=1)
    inputs = metric_inputs(logits, 2)
    assert inputs.shape == (20,)
    torch.testing.assert_close(inputs, probs)

    val = build_metrics(2, prefix="val/")
    val.update(inputs, targets)
    test = val.clone(prefix="test/")
    test.reset()
    test.update(inputs, targets)
    out = test.compute()
    assert out["test/acc"].item() == pytest.approx(0.7)
    val.reset()
    val.update(inputs[targets == 1], targets[targets == 1])  # state really cleared
    assert val.compute()["val/recall"].item() == pytest.approx(0.8)


def test_binary_confusion_matrix() -> None:
    probs, targets = known_binary()
    cm = build_confusion_matrix(2)
    cm.update(probs, targets)
    assert torch.equal(cm.compute(), torch.tensor([[6, 4], [2, 8]]))


def test_collection_matches_offline_at_half() -> None:
    """Epoch-end logs and offline reports must agree at the default 0.5 threshold."""
    gen = torch.Generator().manual_seed(1)
    targets = torch.randint(0, 2, (200,), generator=gen)
    probs = (0.3 * targets + 0.7 * torch.rand(200, generator=gen)).clamp(0, 1)
    collection = build_metrics(2, prefix="")
    collection.update(probs, targets)
    online = {k: float(v) for k, v in collection.compute().items()}
    offline = binary_metrics_at_threshold(probs, targets, 0.5)
    assert online.keys() == offline.keys()
    for key in METRIC_KEYS:
        assert online[key] == pytest.approx(offline[key], abs=1e-6), key


# --------------------------------------------------------------------------- multiclass


def test_multiclass_known_case() -> None:
    probs = metric_inputs(mc_logits(), 3)
    assert probs.shape == (10, 3)
    collection = build_metrics(3, prefix="test/")
    collection.update(probs[:4], MC_TARGETS[:4])
    collection.update(probs[4:], MC_TARGETS[4:])
    out = {k.removeprefix("test/"): float(v) for k, v in collection.compute().items()}

    recalls = [3 / 4, 2 / 3, 2 / 3]
    precisions = [3 / 4, 2 / 3, 2 / 3]  # column sums are (4, 3, 3)
    specificities = [5 / 6, 6 / 7, 6 / 7]
    assert out["acc"] == pytest.approx(0.7, abs=1e-6)  # micro: 7 / 10, not macro recall
    assert out["balanced_acc"] == pytest.approx(sum(recalls) / 3, abs=1e-6)
    assert out["recall"] == pytest.approx(sum(recalls) / 3, abs=1e-6)
    assert out["precision"] == pytest.approx(sum(precisions) / 3, abs=1e-6)
    assert out["specificity"] == pytest.approx(sum(specificities) / 3, abs=1e-6)
    f1s = [2 * p * r / (p + r) for p, r in zip(precisions, recalls, strict=True)]
    assert out["f1"] == pytest.approx(sum(f1s) / 3, abs=1e-6)
    assert out["kappa"] == pytest.approx(kappa_from_confusion(MC_CONFUSION), abs=1e-6)
    assert 0.0 <= out["auroc"] <= 1.0

    cm = build_confusion_matrix(3)
    cm.update(probs, MC_TARGETS)
    assert torch.equal(cm.compute(), MC_CONFUSION)


def test_metric_inputs_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        metric_inputs(torch.zeros(4, 3), 2)
    with pytest.raises(ValueError, match="num_classes"):
        build_metrics(1, prefix="")


def test_metric_inputs_detaches_and_upcasts() -> None:
    logits = torch.randn(5, 2, requires_grad=True)
    out = metric_inputs(logits.to(torch.bfloat16), 2)
    assert not out.requires_grad
    assert out.dtype == torch.float32


# --------------------------------------------------------------------------- Youden


def hand_roc() -> tuple[torch.Tensor, torch.Tensor]:
    pos = [0.35, 0.4, 0.8, 0.9]
    neg = [0.1, 0.2, 0.3, 0.6]
    return torch.tensor(pos + neg), torch.tensor([1] * 4 + [0] * 4)


def test_youden_hand_made_roc() -> None:
    # Cuts (>=): 0.9 -> J=.25, 0.8 -> .5, 0.6 -> .25, 0.4 -> .5, 0.35 -> .75 (best), 0.3 -> .5
    # Best cut 0.35 (sens 1, spec 3/4); the next lower score is 0.3 -> threshold 0.325.
    probs, targets = hand_roc()
    res = youden_threshold(probs, targets)
    assert isinstance(res, YoudenResult)
    assert res.threshold == pytest.approx(0.325, abs=1e-6)
    assert res.sensitivity == pytest.approx(1.0)
    assert res.specificity == pytest.approx(0.75)
    assert res.j == pytest.approx(0.75)
    with pytest.raises(AttributeError):
        res.threshold = 0.1  # type: ignore[misc]  # frozen


def test_youden_threshold_reproduces_under_torchmetrics_rule() -> None:
    """The returned threshold must give the same sens/spec with torchmetrics' `p > t` rule."""
    probs, targets = hand_roc()
    res = youden_threshold(probs, targets)
    at = binary_metrics_at_threshold(probs, targets, res.threshold)
    assert at["recall"] == pytest.approx(res.sensitivity)
    assert at["specificity"] == pytest.approx(res.specificity)
    # the naive choice (the cut score itself) would lose the positive sitting at 0.35
    naive = binary_metrics_at_threshold(probs, targets, 0.35)
    assert naive["recall"] == pytest.approx(0.75)


def test_youden_perfect_separation_and_score_of_one() -> None:
    probs = torch.tensor([1.0, 0.95, 0.7, 0.2, 0.1])
    targets = torch.tensor([1, 1, 1, 0, 0])
    res = youden_threshold(probs, targets)
    assert res.j == pytest.approx(1.0)
    assert res.threshold == pytest.approx(0.45)
    assert 0.0 <= res.threshold <= 1.0


def test_youden_first_point_is_clamped() -> None:
    """Inverted scores: every cut has J <= 0, the winner is the synthetic first ROC point."""
    probs = torch.tensor([0.1, 0.2, 0.8, 1.0])
    targets = torch.tensor([1, 1, 0, 0])
    res = youden_threshold(probs, targets)
    assert res.j == pytest.approx(0.0)
    assert res.sensitivity == pytest.approx(0.0)
    assert res.specificity == pytest.approx(1.0)
    assert 0.0 <= res.threshold <= 1.0
    at = binary_metrics_at_threshold(probs, targets, res.threshold)
    assert at["recall"] == pytest.approx(0.0)
    assert at["specificity"] == pytest.approx(1.0)


def test_youden_single_class() -> None:
    probs = torch.tensor([0.2, 0.7, 0.9])
    with pytest.raises(ValueError, match="both classes"):
        youden_threshold(probs, torch.ones(3, dtype=torch.long))
    res = youden_threshold(probs, torch.zeros(3, dtype=torch.long), on_single_class="default")
    assert res.threshold == 0.5
    assert res.j == 0.0
    assert math.isnan(res.sensitivity) and math.isnan(res.specificity)


def test_youden_rejects_logits() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        youden_threshold(torch.tensor([-2.0, 3.0]), torch.tensor([0, 1]))


# --------------------------------------------------------------------------- at threshold


def test_binary_metrics_at_threshold_known_confusion() -> None:
    probs, targets = known_binary()
    out = binary_metrics_at_threshold(probs, targets, 0.5)
    assert set(out) == set(METRIC_KEYS)
    assert all(isinstance(v, float) for v in out.values())
    for key, expected in EXPECTED_BINARY.items():
        assert out[key] == pytest.approx(expected, abs=1e-6), key
    # threshold 0.95 predicts nothing positive: recall 0, specificity 1, auroc unchanged
    high = binary_metrics_at_threshold(probs, targets, 0.95)
    assert high["recall"] == 0.0 and high["specificity"] == 1.0
    assert high["auroc"] == pytest.approx(out["auroc"])


def test_auroc_perfect_separation_is_one() -> None:
    probs = torch.tensor([0.05, 0.2, 0.3, 0.6, 0.61, 0.99])
    targets = torch.tensor([0, 0, 0, 1, 1, 1])
    assert binary_metrics_at_threshold(probs, targets, 0.5)["auroc"] == 1.0
    collection = build_metrics(2, prefix="")
    collection.update(probs, targets)
    assert collection.compute()["auroc"].item() == 1.0


def test_auroc_single_class_is_nan() -> None:
    out = binary_metrics_at_threshold(torch.tensor([0.2, 0.9]), torch.tensor([1, 1]), 0.5)
    assert math.isnan(out["auroc"])
    assert out["recall"] == pytest.approx(0.5)


# --------------------------------------------------------------------------- bootstrap


def noisy_binary(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 2, (n,), generator=gen)
    probs = torch.sigmoid(1.5 * (2 * targets - 1) + torch.randn(n, generator=gen))
    return probs, targets


def auroc_fn(p: torch.Tensor, t: torch.Tensor) -> float:
    return float(binary_auroc(p, t))


def acc_fn(p: torch.Tensor, t: torch.Tensor) -> float:
    return float(binary_accuracy(p, t))


def test_bootstrap_contains_point_and_is_deterministic() -> None:
    probs, targets = noisy_binary(150, seed=3)
    point, low, high = bootstrap_ci(probs, targets, auroc_fn, n_boot=300, seed=7)
    assert point == pytest.approx(auroc_fn(probs, targets))
    assert low < point < high
    assert low >= 0.0 and high <= 1.0
    assert bootstrap_ci(probs, targets, auroc_fn, n_boot=300, seed=7) == (point, low, high)
    assert bootstrap_ci(probs, targets, auroc_fn, n_boot=300, seed=8) != (point, low, high)


def test_bootstrap_narrows_with_more_samples() -> None:
    small = bootstrap_ci(*noisy_binary(60, seed=0), acc_fn, n_boot=300, seed=0)
    large = bootstrap_ci(*noisy_binary(2000, seed=0), acc_fn, n_boot=300, seed=0)
    width_small = small[2] - small[1]
    width_large = large[2] - large[1]
    assert width_large < width_small / 2  # ~ 1/sqrt(n): expected ratio about 0.17


def test_bootstrap_skips_single_class_resamples() -> None:
    # one positive among 6: ~40% of resamples miss it; AUROC must never see those
    probs = torch.tensor([0.9, 0.1, 0.2, 0.3, 0.4, 0.5])
    targets = torch.tensor([1, 0, 0, 0, 0, 0])
    seen: list[int] = []

    def fn(p: torch.Tensor, t: torch.Tensor) -> float:
        seen.append(int(t.sum()))
        return auroc_fn(p, t)

    point, low, high = bootstrap_ci(probs, targets, fn, n_boot=200, seed=0)
    assert point == 1.0 and low == 1.0 and high == 1.0
    assert 0 < len(seen) - 1 < 200  # the first call is the point estimate
    assert all(0 < s < 6 for s in seen)

    calls: list[int] = []

    def count(p: torch.Tensor, t: torch.Tensor) -> float:
        calls.append(1)
        return acc_fn(p, t)

    bootstrap_ci(probs, targets, count, n_boot=200, seed=0, require_all_classes=False)
    assert len(calls) == 201


def test_bootstrap_multiclass_rows() -> None:
    probs = metric_inputs(mc_logits(), 3)

    def macro_recall(p: torch.Tensor, t: torch.Tensor) -> float:
        collection = build_metrics(3, prefix="")
        collection.update(p, t)
        return float(collection["balanced_acc"].compute())

    point, low, high = bootstrap_ci(probs, MC_TARGETS, macro_recall, n_boot=50, seed=0)
    assert point == pytest.approx((3 / 4 + 2 / 3 + 2 / 3) / 3, abs=1e-6)
    assert low <= point <= high


def test_bootstrap_argument_checks() -> None:
    probs, targets = noisy_binary(10, seed=0)
    with pytest.raises(ValueError):
        bootstrap_ci(probs, targets, acc_fn, n_boot=0)
    with pytest.raises(ValueError):
        bootstrap_ci(probs, targets, acc_fn, alpha=1.5)
    with pytest.raises(ValueError):
        bootstrap_ci(probs[:5], targets, acc_fn)
