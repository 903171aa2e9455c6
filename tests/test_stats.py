"""The statistics layer against the libraries it replaces: one AUROC, one ROC, one bootstrap."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score
from torchmetrics.classification import BinaryAUROC
from torchmetrics.functional.classification import binary_roc

from fracture_lit.stats.auroc import auroc, macro_auroc, midranks
from fracture_lit.stats.bootstrap import bootstrap_ci
from fracture_lit.stats.roc import roc_curve
from tests.conftest import REPO_ROOT


def tied_scores(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Scores on a coarse grid (many ties, within and across classes) that still rank."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = np.clip(np.round(rng.normal(0.45 + 0.15 * labels, 0.2), 1), 0, 1)
    return scores.astype(np.float32), labels


@pytest.mark.parametrize("seed", range(5))
def test_auroc_equals_torchmetrics_and_scikit_learn_with_ties(seed: int) -> None:
    scores, labels = tied_scores(seed)
    assert len(np.unique(scores)) < 15  # the data really is tie-heavy
    metric = BinaryAUROC()
    metric.update(torch.from_numpy(scores), torch.from_numpy(labels))
    ours = auroc(scores, labels)
    assert ours == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert ours == pytest.approx(float(metric.compute()), abs=1e-6)
    assert 0.55 < ours < 0.95  # informative, so a wrong tie rule would show


def test_auroc_edge_cases() -> None:
    assert auroc([0.2, 0.2, 0.2], [0, 1, 1]) == 0.5  # all tied: a coin flip
    assert auroc([0.1, 0.9], [False, True]) == 1.0
    assert np.isnan(auroc([0.1, 0.9], [1, 1]))
    with pytest.raises(ValueError, match="differ in length"):
        auroc([0.1, 0.9], [1])
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1]])
    labels = np.array([0, 1, 2, 0])
    expected = np.mean([roc_auc_score(labels == c, probs[:, c]) for c in range(3)])
    assert macro_auroc(probs, labels) == pytest.approx(expected)


def test_midranks_equal_scipy_rankdata() -> None:
    scores, _ = tied_scores(0, 50)
    assert np.array_equal(midranks(scores), rankdata(scores))
    grid = np.stack([scores, scores[::-1]])
    assert np.array_equal(midranks(grid), rankdata(grid, axis=1))


@pytest.mark.parametrize("seed", range(3))
def test_roc_curve_equals_torchmetrics(seed: int) -> None:
    scores, labels = tied_scores(seed, 120)
    probs, targets = torch.from_numpy(scores), torch.from_numpy(labels)
    for ours, theirs in zip(roc_curve(probs, targets), binary_roc(probs, targets), strict=True):
        assert torch.equal(ours, theirs)


def test_one_bootstrap_for_tensors_and_arrays() -> None:
    """numpy rows (reports) and tensors (training) draw the same resamples."""
    scores, labels = tied_scores(1, 80)
    from_numpy = bootstrap_ci(scores, labels, auroc, n_boot=200, seed=3)
    from_torch = bootstrap_ci(
        torch.from_numpy(scores),
        torch.from_numpy(labels),
        lambda s, t: auroc(s.numpy(), t.numpy()),
        n_boot=200,
        seed=3,
    )
    assert from_numpy == from_torch
    point, low, high = from_numpy
    assert point == auroc(scores, labels) and low < point < high


def test_stats_split_names_and_catalogue_import_without_torch() -> None:
    code = (
        "import sys, fracture_lit.stats, fracture_lit.stats.catalogue, fracture_lit.stats.splits;"
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT).returncode == 0
