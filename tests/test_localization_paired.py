"""The sweep's paired comparison of two jobs' localization scores on the same images."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fracture_lit.localization.paired import paired_difference
from fracture_lit.stats.paired import NotPairedError, sign_flip_p


def _scores(values: np.ndarray, prefix: str = "img") -> dict[str, float]:
    return {f"{prefix}{i:03d}.jpg": float(v) for i, v in enumerate(values)}


def test_a_clearly_better_job_is_positive_with_an_interval_above_zero() -> None:
    rng = np.random.default_rng(0)
    reference = (rng.random(80) < 0.3).astype(float)  # pointing hits of a weak job
    better = np.maximum(reference, rng.random(80) < 0.6)  # hits all of those and more
    result = paired_difference(_scores(better), _scores(reference), score="pointing")
    assert result.delta == pytest.approx(better.mean() - reference.mean())
    assert result.delta > 0 and result.low > 0 and result.excludes_zero
    assert result.p < 0.001 and result.n == 80 and result.score == "pointing"
    assert result.job == pytest.approx(better.mean())
    assert result.reference == pytest.approx(reference.mean())
    # The other way round: the same numbers with the sign flipped.
    reverse = paired_difference(_scores(reference), _scores(better))
    assert reverse.delta == pytest.approx(-result.delta) and reverse.high < 0


def test_identical_scores_differ_by_exactly_nothing() -> None:
    energy = np.random.default_rng(1).random(50)
    result = paired_difference(_scores(energy), _scores(energy), score="energy")
    assert result.delta == 0.0 and result.low == 0.0 and result.high == 0.0
    assert result.p == 1.0 and not result.excludes_zero
    assert result.to_dict()["excludes_zero"] is False


def test_images_are_aligned_by_identifier_not_position() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.random(40), rng.random(40) * 0.5
    job, reference = _scores(a), _scores(b)
    shuffled = dict(reversed(list(reference.items())))
    assert paired_difference(job, shuffled) == paired_difference(job, reference)


def test_different_images_are_refused_saying_how() -> None:
    job = _scores(np.ones(5))
    reference = {**_scores(np.ones(4)), "other.jpg": 1.0}
    with pytest.raises(NotPairedError, match=r"1 only in the job, 1 only in the reference"):
        paired_difference(job, reference)
    with pytest.raises(NotPairedError, match="no images"):
        paired_difference({}, {})


def test_sign_flip_p_is_calibrated_under_no_difference() -> None:
    rng = np.random.default_rng(3)
    ps = [sign_flip_p(rng.normal(size=30), 2000, seed=k) for k in range(60)]
    assert 0.25 < np.mean(np.array(ps) < 0.5) < 0.75  # roughly uniform p-values
    assert sign_flip_p(np.full(30, 0.2), 2000) < 0.001


def test_importing_it_does_not_import_torch() -> None:
    """Sweep reports read folders without torch; the module must not pull it in."""
    code = "import sys, fracture_lit.localization.paired; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
