"""Paired comparison: AUROC, DeLong's variance and test, McNemar, matching images by id."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from fracture_lit.evaluation.predictions import SplitPredictions
from fracture_lit.results.paired import (
    JobPredictions,
    NotPairedError,
    align,
    compare,
    compare_to_best,
)
from fracture_lit.stats.auroc import auroc as midrank_auroc
from fracture_lit.stats.delong import delong_covariance, delong_test
from fracture_lit.stats.mcnemar import mcnemar_test


def brute_force_delong(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong et al. (1988) written out: psi over every (positive, negative) pair, the
    structural components V10 (per positive) and V01 (per negative), S10/m + S01/n."""
    pos, neg = scores[:, labels == 1], scores[:, labels == 0]
    m, n = pos.shape[1], neg.shape[1]
    k = scores.shape[0]
    psi = np.zeros((k, m, n))
    for r in range(k):
        for i in range(m):
            for j in range(n):
                x, y = pos[r, i], neg[r, j]
                psi[r, i, j] = 1.0 if x > y else (0.5 if x == y else 0.0)
    aucs = psi.mean(axis=(1, 2))
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    s10 = np.array(
        [
            [np.sum((v10[a] - v10[a].mean()) * (v10[b] - v10[b].mean())) for b in range(k)]
            for a in range(k)
        ]
    ) / (m - 1)
    s01 = np.array(
        [
            [np.sum((v01[a] - v01[a].mean()) * (v01[b] - v01[b].mean())) for b in range(k)]
            for a in range(k)
        ]
    ) / (n - 1)
    return aucs, s10 / m + s01 / n


def scored(n: int, signal: float, seed: int, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.35).astype(np.int64)
    scores = 1 / (1 + np.exp(-(signal * (2 * labels - 1) + rng.normal(size=n))))
    if ties:
        scores = np.round(scores, 1)  # many ties, within and across classes
    return scores, labels


def job(name: str, scores: np.ndarray, labels: np.ndarray, ids=None, threshold=0.5, **setting):
    probs = np.column_stack([1 - scores, scores])
    return JobPredictions(
        name=name,
        ids=list(ids) if ids is not None else [f"img{i:04d}.jpg" for i in range(labels.size)],
        labels=labels,
        probs=probs,
        predicted=(scores > threshold).astype(np.int64),
        class_names=["intact", "fractured"],
        setting=setting,
    )


# ----------------------------------------------------------------------------- AUROC, DeLong
@pytest.mark.parametrize("ties", [False, True])
def test_midrank_auroc_equals_scikit_learn(ties: bool) -> None:
    for seed in range(5):
        scores, labels = scored(120, 0.8, seed, ties)
        assert midrank_auroc(scores, labels) == pytest.approx(
            roc_auc_score(labels, scores), abs=1e-12
        )


def test_midrank_auroc_single_class_is_nan() -> None:
    assert math.isnan(midrank_auroc(np.array([0.1, 0.9]), np.array([1, 1])))


@pytest.mark.parametrize("ties", [False, True])
def test_delong_covariance_equals_structural_components(ties: bool) -> None:
    rng = np.random.default_rng(3)
    base, labels = scored(70, 1.0, 3, ties)
    # Three correlated scorers: the same signal plus their own noise.
    other = np.clip(base + rng.normal(0, 0.15, base.size), 0, 1)
    third = np.round(np.clip(base * 0.5 + rng.random(base.size) * 0.5, 0, 1), 2 if ties else 6)
    scores = np.vstack([base, other, third])
    aucs, cov = delong_covariance(scores, labels)
    ref_aucs, ref_cov = brute_force_delong(scores, labels)
    np.testing.assert_allclose(aucs, ref_aucs, atol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-10, atol=1e-14)
    for r in range(3):
        assert aucs[r] == pytest.approx(roc_auc_score(labels, scores[r]), abs=1e-12)


def test_delong_matches_bootstrap_spread_of_the_difference() -> None:
    """An independent check of the variance of Δ: the spread of Δ over image resamples."""
    scores_a, labels = scored(600, 1.0, 11)
    rng = np.random.default_rng(5)
    scores_b = np.clip(scores_a + rng.normal(0, 0.2, scores_a.size), 0, 1)
    result = delong_test(scores_a, scores_b, labels)
    deltas = []
    for _ in range(400):
        idx = rng.integers(0, labels.size, labels.size)
        deltas.append(
            roc_auc_score(labels[idx], scores_a[idx]) - roc_auc_score(labels[idx], scores_b[idx])
        )
    assert result.se == pytest.approx(np.std(deltas, ddof=1), rel=0.2)


def test_delong_identical_models_give_p_one() -> None:
    scores, labels = scored(80, 0.7, 1)
    result = delong_test(scores, scores, labels)
    assert result.delta == 0 and result.p == 1.0 and result.se == 0


def test_delong_p_values_are_uniform_under_the_null() -> None:
    """Two equally good, independently noisy scorers: about 5% of p-values fall below 0.05."""
    rejections = 0
    for seed in range(300):
        rng = np.random.default_rng(1000 + seed)
        labels = (rng.random(150) < 0.4).astype(np.int64)
        a = labels * 1.0 + rng.normal(size=150)
        b = labels * 1.0 + rng.normal(size=150)
        rejections += delong_test(a, b, labels).p < 0.05
    assert 0.02 <= rejections / 300 <= 0.09


def test_delong_clearly_better_model_has_small_p() -> None:
    rng = np.random.default_rng(2)
    labels = (rng.random(300) < 0.4).astype(np.int64)
    strong = labels * 2.5 + rng.normal(size=300)
    weak = labels * 0.3 + rng.normal(size=300)
    result = delong_test(strong, weak, labels)
    assert result.delta > 0.2 and result.p < 1e-6 and result.low > 0


# ----------------------------------------------------------------------------- McNemar
def test_mcnemar_exact_small_counts() -> None:
    a = np.array([True] * 10 + [False] * 0 + [True] * 5)
    b = np.array([False] * 10 + [True] * 5)
    result = mcnemar_test(a, b)
    assert (result.only_a, result.only_b, result.method) == (10, 0, "exact")
    assert result.p == pytest.approx(2 * 0.5**10)


def test_mcnemar_chi_square_large_counts() -> None:
    a = np.array([True] * 30 + [False] * 10 + [True] * 50)
    b = np.array([False] * 30 + [True] * 10 + [True] * 50)
    result = mcnemar_test(a, b)
    statistic = (abs(30 - 10) - 1) ** 2 / 40
    assert result.method == "chi2"
    assert result.p == pytest.approx(math.erfc(math.sqrt(statistic / 2)))  # chi2(1) tail


def test_mcnemar_no_discordant_pairs() -> None:
    same = np.array([True, False, True])
    assert mcnemar_test(same, same).p == 1.0


# ----------------------------------------------------------------------------- comparison
def test_identical_jobs_are_indistinguishable() -> None:
    scores, labels = scored(90, 0.8, 4)
    result = compare(job("b", scores, labels), job("a", scores, labels), n_boot=200)
    assert result.auroc.delta == 0 and result.auroc.p == 1.0
    assert (result.auroc.low, result.auroc.high) == (0, 0)
    assert result.acc.delta == 0 and result.acc.p == 1.0
    assert result.verdict == "indistinguishable"
    assert result.sentence.startswith(
        "b is not distinguishable from a: ΔAUROC 0.000 [0.000, 0.000] p=1"
    )


def test_clearly_worse_job_is_called_worse() -> None:
    rng = np.random.default_rng(8)
    labels = (rng.random(250) < 0.4).astype(np.int64)
    good = 1 / (1 + np.exp(-(3 * (2 * labels - 1) + rng.normal(size=250))))
    bad = 1 / (1 + np.exp(-(0.3 * (2 * labels - 1) + rng.normal(size=250))))
    result = compare(job("weak", bad, labels), job("strong", good, labels), n_boot=300)
    assert result.verdict == "worse"
    assert result.auroc.high < 0 and result.auroc.p < 1e-6
    assert result.acc.delta < 0 and result.acc.p < 0.01 and result.acc.high < 0
    assert result.balanced_acc.delta < 0 and result.balanced_acc.high < 0
    assert re.match(
        r"weak is worse than strong: ΔAUROC -0\.\d{3} \[-0\.\d{3}, -0\.\d{3}\] p=<0\.001 "
        r"\(DeLong, 250 paired images\); Δaccuracy -0\.\d{3} .* McNemar p=",
        result.sentence,
    )


def test_images_are_matched_by_identifier_not_position() -> None:
    scores_a, labels = scored(100, 0.8, 6)
    scores_b, _ = scored(100, 0.5, 7)
    scores_b = np.where(labels == 1, scores_b, scores_b * 0.8)
    a = job("a", scores_a, labels)
    b = job("b", scores_b, labels)
    order = np.random.default_rng(0).permutation(100)
    shuffled = job("b", scores_b[order], labels[order], ids=[b.ids[i] for i in order])
    straight, matched = compare(b, a, n_boot=100), compare(shuffled, a, n_boot=100)
    assert matched.auroc == straight.auroc and matched.acc == straight.acc
    # By position the rows would no longer be the same images: the labels disagree.
    positional = job("b", scores_b[order], labels[order])
    assert compare(positional, a).skipped.startswith("labels differ")


def test_different_images_or_split_are_refused_with_the_reason() -> None:
    scores, labels = scored(40, 0.8, 9)
    a = job("a", scores, labels, split_seed=42)
    other_images = job("b", scores, labels, ids=[f"x{i}.jpg" for i in range(40)], split_seed=42)
    with pytest.raises(NotPairedError, match=r"test images differ \(40 only in a, 40 only in b"):
        align(a, other_images)
    other_seed = job("c", scores, labels, split_seed=1)
    result = compare(other_seed, a)
    assert result.auroc is None and result.verdict == "skipped"
    assert "data.split_seed differs (1 for c, 42 for a)" in result.sentence


def test_compare_to_best_picks_on_validation_and_phrases_each_job() -> None:
    scores, labels = scored(120, 1.0, 12)
    rng = np.random.default_rng(1)
    noisy = np.clip(scores + rng.normal(0, 0.25, scores.size), 0, 1)
    jobs = [job("resnet18", noisy, labels), job("efficientnet_b0", scores, labels)]
    # resnet18 wins on validation although efficientnet_b0 is better on these test images.
    best = compare_to_best(jobs, {"resnet18": 0.81, "efficientnet_b0": 0.79}, n_boot=200)
    assert best.best == "resnet18"
    assert best.cell("resnet18") == "best (val/auroc 0.810)"
    record = best.comparisons["efficientnet_b0"]
    assert record.auroc.delta > 0
    assert best.cell("efficientnet_b0") == record.cell
    assert best.sentences()[0] == "resnet18 is the best job by val/auroc (0.810)."
    assert compare_to_best(jobs, {"resnet18": math.nan}) is None


def test_multiclass_uses_bootstrap_only() -> None:
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 90)
    logits = np.eye(3)[labels] * 2 + rng.normal(size=(90, 3))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    names = ["a", "b", "c"]
    one = JobPredictions("one", [str(i) for i in range(90)], labels, probs, probs.argmax(1), names)
    two = JobPredictions(
        "two", [str(i) for i in range(90)], labels, probs[:, [0, 1, 2]] ** 2, probs.argmax(1), names
    )
    result = compare(two, one, n_boot=100)
    assert result.delong is None and result.auroc.p is None
    assert result.acc.delta == 0
    assert "paired bootstrap; DeLong is binary-only" in result.sentence


def test_reads_the_review_folder_the_training_run_writes(tmp_path: Path) -> None:
    scores, labels = scored(30, 1.0, 2)
    data_root = tmp_path / "data"
    paths = [str(data_root / "images" / f"IMG{i:05d}.jpg") for i in range(30)]
    for folder, root in (("0", data_root), ("1", tmp_path / "copy" / ".." / "data")):
        pred = SplitPredictions(
            split="test",
            class_names=["intact", "fractured"],
            paths=[p.replace(str(data_root), str(root)) for p in paths],
            labels=labels,
            probs=np.column_stack([1 - scores, scores]),
            threshold=0.4,
        )
        pred.write_csv(tmp_path / folder / "review" / "test" / "predictions.csv")
        config = {
            "data": {"_target_": "x.FracAtlasDataModule", "root": str(root), "split_seed": 42}
        }
        (tmp_path / folder / "config.yaml").write_text(yaml.safe_dump(config))
    a = JobPredictions.from_run_folder(tmp_path / "0", name="a")
    b = JobPredictions.from_run_folder(tmp_path / "1", name="b")
    assert a.ids[0] == "images/IMG00000.jpg" and a.ids == b.ids
    np.testing.assert_array_equal(a.predicted, (scores > 0.4).astype(int))
    assert compare(b, a, n_boot=50).auroc.delta == 0
    with pytest.raises(FileNotFoundError, match="without callbacks.review"):
        JobPredictions.from_run_folder(tmp_path / "missing")
