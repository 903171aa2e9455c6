"""Calibration statistics: ECE, Brier, reliability bins, temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.classification import BinaryCalibrationError, MulticlassCalibrationError

from fracture_lit.stats.calibration import calibration_cis, calibration_metrics, reliability_bins
from fracture_lit.stats.temperature import apply_temperature, fit_temperature, logits_from_probs


def calibrated_binary(n: int, seed: int, sharpen: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels drawn with probability p (calibrated), reported as sigmoid(sharpen * logit p)."""
    g = torch.Generator().manual_seed(seed)
    logit = torch.randn(n, generator=g, dtype=torch.float64) * 1.5
    labels = (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(logit)).long()
    return torch.sigmoid(sharpen * logit).float(), labels


def calibrated_multiclass(n: int, seed: int, sharpen: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 4, generator=g, dtype=torch.float64) * 1.5
    labels = torch.multinomial(torch.softmax(logits, 1), 1, generator=g).squeeze(1)
    return torch.softmax(sharpen * logits, 1).float(), labels


def test_ece_and_brier_match_torchmetrics_and_hand_values() -> None:
    probs, labels = calibrated_binary(500, 0, sharpen=2.0)
    got = calibration_metrics(probs, labels)
    assert got["ece"] == pytest.approx(float(BinaryCalibrationError(n_bins=15)(probs, labels)))
    assert got["brier"] == pytest.approx(float(((probs - labels) ** 2).mean()))
    # (N, 2) input reads column 1, as everywhere else in the project.
    both = calibration_metrics(torch.stack([1 - probs, probs], 1), labels)
    assert both == pytest.approx(got)
    assert calibration_metrics(torch.tensor([1.0, 0.0]), torch.tensor([1, 0])) == {
        "ece": 0.0,
        "brier": 0.0,
    }
    mc, mc_labels = calibrated_multiclass(400, 1, sharpen=2.0)
    got_mc = calibration_metrics(mc, mc_labels)
    metric = MulticlassCalibrationError(num_classes=4, n_bins=15)
    assert got_mc["ece"] == pytest.approx(float(metric(mc, mc_labels)))
    onehot = torch.nn.functional.one_hot(mc_labels, 4)
    assert got_mc["brier"] == pytest.approx(float(((mc - onehot) ** 2).sum(1).mean()))


def test_reliability_bins_agree_with_the_ece() -> None:
    for probs, labels in (calibrated_binary(600, 2, 3.0), calibrated_multiclass(600, 3, 3.0)):
        bins = reliability_bins(probs, labels)
        assert bins.count.sum() == labels.numel()
        assert bins.ece == pytest.approx(calibration_metrics(probs, labels)["ece"], abs=1e-6)
        assert np.isnan(bins.confidence[bins.count == 0]).all()


def test_bootstrap_binning_equals_torchmetrics_on_edge_values() -> None:
    """The resamples use reliability_bins: its ECE must be torchmetrics' on any input,
    including scores exactly on bin edges, 0 and 1."""
    g = torch.Generator().manual_seed(0)
    for trial in range(30):
        n = int(torch.randint(5, 200, (1,), generator=g))
        probs = torch.rand(n, generator=g)
        probs[: n // 4] = torch.randint(0, 16, (n // 4,), generator=g) / 15  # bin edges
        labels = torch.randint(0, 2, (n,), generator=g)
        want = float(BinaryCalibrationError(n_bins=15)(probs, labels))
        assert reliability_bins(probs, labels).ece == pytest.approx(want, abs=1e-6), trial


def test_calibrated_model_has_small_ece_overconfident_one_large() -> None:
    probs, labels = calibrated_binary(4000, 4)
    over, _ = calibrated_binary(4000, 4, sharpen=3.0)
    assert calibration_metrics(probs, labels)["ece"] < 0.03
    assert calibration_metrics(over, labels)["ece"] > 0.08


def test_temperature_fit_recovers_the_sharpening_and_lowers_nll() -> None:
    for make in (calibrated_binary, calibrated_multiclass):
        probs, labels = make(3000, 5, sharpen=2.5)
        fit = fit_temperature(probs, labels)
        assert fit.temperature == pytest.approx(2.5, rel=0.15)
        assert fit.nll_after < fit.nll_before
        scaled = apply_temperature(probs, fit.temperature)
        assert (
            calibration_metrics(scaled, labels)["ece"] < calibration_metrics(probs, labels)["ece"]
        )
        nll = torch.nn.functional.cross_entropy(logits_from_probs(scaled), labels)
        assert float(nll) == pytest.approx(fit.nll_after, rel=1e-4)


def test_temperature_of_a_calibrated_model_is_near_one() -> None:
    probs, labels = calibrated_binary(4000, 6)
    fit = fit_temperature(probs, labels)
    assert fit.temperature == pytest.approx(1.0, abs=0.1)
    assert fit.nll_after <= fit.nll_before


def test_single_class_keeps_temperature_one() -> None:
    fit = fit_temperature(torch.tensor([0.7, 0.8, 0.9]), torch.tensor([1, 1, 1]))
    assert fit.temperature == 1.0 and fit.nll_after == fit.nll_before


def test_apply_temperature_keeps_ranking_and_argmax() -> None:
    probs, _ = calibrated_binary(200, 7)
    scaled = apply_temperature(probs, 2.0)
    assert scaled.shape == probs.shape and scaled.dtype == probs.dtype
    assert torch.equal(torch.argsort(scaled), torch.argsort(probs))
    assert torch.equal(scaled > 0.5, probs > 0.5)
    assert (scaled - 0.5).abs().max() < (probs - 0.5).abs().max()  # softer
    assert apply_temperature(probs, 1.0) is probs
    # Saturated float32 scores keep their order (no ties made by clamping).
    extreme = torch.tensor([0.0, 1e-40, 1e-20, 1e-8, 0.5, 1 - 1.2e-7, 1 - 6e-8, 1.0])
    assert torch.equal(torch.argsort(apply_temperature(extreme, 3.0)), torch.arange(8))
    mc, _ = calibrated_multiclass(100, 8)
    assert torch.equal(apply_temperature(mc, 0.5).argmax(1), mc.argmax(1))
    # Binary (N,) and its (N, 2) softmax form scale identically.
    pair = apply_temperature(torch.stack([1 - probs, probs], 1).double(), 2.0)
    assert torch.allclose(pair[:, 1].float(), scaled, atol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        apply_temperature(probs, 0.0)


def test_calibration_intervals_contain_the_point_and_repeat() -> None:
    probs, labels = calibrated_binary(300, 9, sharpen=2.0)
    first = calibration_cis(probs, labels, n_boot=200, seed=0)
    assert first == calibration_cis(probs, labels, n_boot=200, seed=0)
    for point, low, high in first.values():
        assert low <= point <= high and high - low > 0
