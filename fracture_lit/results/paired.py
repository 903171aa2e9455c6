"""Paired comparison of models scored on the same test images: is the winner really better?

Two models evaluated on the same images make correlated errors, so comparing their separate
confidence intervals (overlap or not) is both too conservative and not the question asked.
The differences below are paired, image by image:

* ΔAUROC with a paired percentile-bootstrap 95% interval (the images are resampled once
  for both models) and, for binary tasks, DeLong's test p-value
  (:mod:`fracture_lit.stats.delong`);
* Δaccuracy with the bootstrap interval and McNemar's test on the discordant images
  (:mod:`fracture_lit.stats.mcnemar`), and Δbalanced accuracy with the bootstrap interval.

Images are matched by identifier (the path relative to the data root), never by position,
and jobs whose data or split settings differ, or whose test images differ, are not compared:
the reason is reported instead. :func:`compare_to_best` picks the best job on validation
(picking on test and then testing on test would favour the winner) and says in one sentence
how every other job compares with it.

Importing this module does not import torch (reports run without it); :func:`compare` does,
to resample with :func:`fracture_lit.stats.bootstrap.bootstrap_cis` like every other interval.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fracture_lit.layout import RunLayout
from fracture_lit.stats import ALPHA
from fracture_lit.stats.auroc import macro_auroc
from fracture_lit.stats.delong import DeLongResult, delong_test
from fracture_lit.stats.mcnemar import McNemarResult, mcnemar_test
from fracture_lit.stats.paired import Difference, NotPairedError

__all__ = [
    "BestComparison",
    "Difference",
    "JobPredictions",
    "NotPairedError",
    "PairedComparison",
    "check_same_data",
    "compare",
    "compare_to_best",
    "data_setting",
    "image_id",
]

#: Data settings that decide which images end up in the test split; jobs compared pairwise
#: must agree on all of them (the training seed may differ: it is part of what is compared).
SPLIT_SETTINGS: tuple[str, ...] = (
    "_target_",
    "root",
    "use_given_split",
    "val_fraction",
    "test_fraction",
    "n_folds",
    "fold",
    "split_seed",
    "manifest",
    "subset_file",
    "group_duplicates",
    "near_duplicates",
)


# ----------------------------------------------------------------------------- predictions
@dataclass
class JobPredictions:
    """One job's predictions on one split, keyed by image identifier."""

    name: str
    ids: list[str]
    labels: np.ndarray  # (N,) class indices
    probs: np.ndarray  # (N, C)
    predicted: np.ndarray  # (N,) at the job's own operating point (val-chosen threshold)
    class_names: list[str]
    #: The data settings of :data:`SPLIT_SETTINGS` the job ran with (absent ones left out).
    setting: dict[str, Any] = field(default_factory=dict)

    @property
    def binary(self) -> bool:
        return len(self.class_names) == 2

    @classmethod
    def from_run_folder(
        cls, folder: str | Path, name: str | None = None, split: str = "test"
    ) -> JobPredictions:
        """Read ``<folder>/review/<split>/predictions.csv`` and the job's ``config.yaml``.

        Raises ``FileNotFoundError`` naming the file when the job wrote no predictions
        (it failed, or ran with the review callback off).
        """
        folder = Path(folder)
        run = RunLayout(folder)
        path = run.review.predictions(split)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no predictions (the job failed, or ran without callbacks.review)"
            )
        setting, root = data_setting(folder)
        with path.open(newline="") as stream:
            rows = list(csv.DictReader(stream))
        columns = list(rows[0]) if rows else []
        class_names = [c.removeprefix("prob_") for c in columns if c.startswith("prob_")]
        if not rows or len(class_names) < 2:
            raise ValueError(f"{path}: no rows, or fewer than two prob_<class> columns")
        index = {name_: i for i, name_ in enumerate(class_names)}
        try:
            labels = np.array([index[r["label"]] for r in rows], dtype=np.int64)
            predicted = np.array([index[r["predicted"]] for r in rows], dtype=np.int64)
        except KeyError as error:
            raise ValueError(f"{path}: label {error} is not one of {class_names}") from None
        probs = np.array([[float(r[f"prob_{c}"]) for c in class_names] for r in rows])
        return cls(
            name=name or folder.name,
            ids=[image_id(r["path"], root) for r in rows],
            labels=labels,
            probs=probs,
            predicted=predicted,
            class_names=class_names,
            setting=setting,
        )


def _data_config(path: Path) -> dict[str, Any]:
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    data = cfg.get("data") if isinstance(cfg, dict) else None
    return dict(data) if isinstance(data, dict) else {}


def data_setting(folder: str | Path) -> tuple[dict[str, Any], Path | None]:
    """A job's :data:`SPLIT_SETTINGS` (from its ``config.yaml``) and its data root."""
    data = _data_config(RunLayout(folder).config)
    root = Path(str(data["root"])).resolve() if data.get("root") else None
    return {k: data[k] for k in SPLIT_SETTINGS if k in data}, root


def image_id(path: str, root: Path | None) -> str:
    """The path relative to the data root: the same image whatever folder holds the data."""
    if root is not None:
        try:
            return Path(path).resolve().relative_to(root).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()


def check_same_data(
    a_name: str, a_setting: Mapping[str, Any], b_name: str, b_setting: Mapping[str, Any]
) -> None:
    """Raise :class:`NotPairedError` naming the first data setting two jobs differ in."""
    for key in sorted(set(a_setting) | set(b_setting)):
        va, vb = a_setting.get(key), b_setting.get(key)
        if key == "root" and va and vb:
            va, vb = str(Path(str(va)).resolve()), str(Path(str(vb)).resolve())
        if va != vb:
            raise NotPairedError(
                f"data.{key} differs ({va!r} for {a_name}, {vb!r} for {b_name}): "
                "different test images"
            )


def align(a: JobPredictions, b: JobPredictions) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(ia, ib)`` of the shared images, both in sorted identifier order (so
    a bootstrap draws the same images whatever order each file lists them in).

    Raises :class:`NotPairedError` saying why when the jobs were not scored on the same
    images with the same labels and classes.
    """
    check_same_data(a.name, a.setting, b.name, b.setting)
    if a.class_names != b.class_names:
        raise NotPairedError(f"classes differ ({a.class_names} vs {b.class_names})")
    pos_a = {image: i for i, image in enumerate(a.ids)}
    pos_b = {image: i for i, image in enumerate(b.ids)}
    if len(pos_a) != len(a.ids) or len(pos_b) != len(b.ids):
        raise NotPairedError("an image identifier occurs twice in one job's predictions")
    if pos_a.keys() != pos_b.keys():
        only_a, only_b = pos_a.keys() - pos_b.keys(), pos_b.keys() - pos_a.keys()
        example = sorted(only_a or only_b)[0]
        raise NotPairedError(
            f"test images differ ({len(only_a)} only in {a.name}, {len(only_b)} only in "
            f"{b.name}, e.g. {example})"
        )
    order = sorted(pos_a)
    ia = np.array([pos_a[image] for image in order], dtype=np.int64)
    ib = np.array([pos_b[image] for image in order], dtype=np.int64)
    wrong = np.flatnonzero(a.labels[ia] != b.labels[ib])
    if wrong.size:
        raise NotPairedError(f"labels differ for {wrong.size} image(s), e.g. {order[wrong[0]]}")
    return ia, ib


# ----------------------------------------------------------------------------- comparison
@dataclass
class PairedComparison:
    """One job against the reference job on their shared test images."""

    job: str
    reference: str
    n: int = 0
    auroc: Difference | None = None
    acc: Difference | None = None
    balanced_acc: Difference | None = None
    delong: DeLongResult | None = None
    mcnemar: McNemarResult | None = None
    skipped: str | None = None  # why no comparison was made

    @property
    def verdict(self) -> str:
        """``better``/``worse`` (both the test and the interval say so), ``indistinguishable``
        (neither does), ``borderline`` (they disagree) or ``skipped``."""
        if self.auroc is None:
            return "skipped"
        significant = self.auroc.p < ALPHA if self.auroc.p is not None else None
        excludes = self.auroc.excludes_zero
        if significant is None:
            significant = excludes
        if significant and excludes:
            return "better" if self.auroc.delta > 0 else "worse"
        return "indistinguishable" if not significant and not excludes else "borderline"

    @property
    def cell(self) -> str:
        """Short form for a table cell: ``ΔAUROC -0.012 [-0.041, 0.017] p=0.42``."""
        if self.auroc is None:
            return f"not compared: {self.skipped}"
        d = self.auroc
        text = f"ΔAUROC {_num(d.delta)} [{_num(d.low)}, {_num(d.high)}]"
        return f"{text} p={_p(d.p)}" if d.p is not None else text

    @property
    def sentence(self) -> str:
        """What a reader can take away, with the numbers that support it."""
        if self.auroc is None:
            return f"{self.job} is not compared with {self.reference}: {self.skipped}."
        phrase = {
            "better": "is better than",
            "worse": "is worse than",
            "indistinguishable": "is not distinguishable from",
            "borderline": "differs only borderline from",
        }[self.verdict]
        how = "DeLong" if self.auroc.p is not None else "paired bootstrap; DeLong is binary-only"
        out = f"{self.job} {phrase} {self.reference}: {self.cell} ({how}, {self.n} paired images)"
        if self.acc is not None and self.acc.p is not None:
            out += (
                f"; Δaccuracy {_num(self.acc.delta)} [{_num(self.acc.low)}, "
                f"{_num(self.acc.high)}], McNemar p={_p(self.acc.p)}"
            )
        return out + "."

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(verdict=self.verdict, cell=self.cell, sentence=self.sentence)
        return out


def _num(value: float) -> str:
    return f"{value:.3f}".replace("-0.000", "0.000")


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.2g}"


def _balanced_acc(correct: np.ndarray, labels: np.ndarray) -> float:
    recalls = [correct[labels == c].mean() for c in np.unique(labels)]
    return float(np.mean(recalls))


def compare(
    job: JobPredictions, reference: JobPredictions, n_boot: int = 1000, seed: int = 0
) -> PairedComparison:
    """``job - reference`` on their shared images; ``skipped`` says why when not paired."""
    try:
        ia, ib = align(job, reference)
    except NotPairedError as error:
        return PairedComparison(job.name, reference.name, skipped=str(error))
    labels = job.labels[ia]
    probs_a, probs_b = job.probs[ia], reference.probs[ib]
    correct_a = job.predicted[ia] == labels
    correct_b = reference.predicted[ib] == labels
    out = PairedComparison(job.name, reference.name, n=int(labels.size))
    if np.unique(labels).size < 2:
        out.skipped = "the test images hold a single class (AUROC is undefined)"
        return out
    c = probs_a.shape[1]
    # The project's one bootstrap imports torch, so it is imported only when there is
    # something to compare: a report that only reads folders stays free of torch.
    from fracture_lit.stats.bootstrap import bootstrap_cis

    # One resample of the images serves both models: that is what makes it paired.
    packed = np.column_stack([probs_a, probs_b, correct_a, correct_b])

    def deltas(p: np.ndarray, t: np.ndarray) -> dict[str, float]:
        ca, cb = p[:, 2 * c].astype(bool), p[:, 2 * c + 1].astype(bool)
        return {
            "auroc": macro_auroc(p[:, :c], t) - macro_auroc(p[:, c : 2 * c], t),
            "acc": float(ca.mean() - cb.mean()),
            "balanced_acc": _balanced_acc(ca, t) - _balanced_acc(cb, t),
        }

    intervals = bootstrap_cis(packed, labels, deltas, n_boot=n_boot, seed=seed)
    if job.binary and min((labels == 1).sum(), (labels == 0).sum()) >= 2:
        out.delong = delong_test(probs_a[:, 1], probs_b[:, 1], labels)
    out.mcnemar = mcnemar_test(correct_a, correct_b)
    values = {
        "auroc": (macro_auroc(probs_a, labels), macro_auroc(probs_b, labels)),
        "acc": (float(correct_a.mean()), float(correct_b.mean())),
        "balanced_acc": (_balanced_acc(correct_a, labels), _balanced_acc(correct_b, labels)),
    }
    tests = {
        "auroc": (out.delong.p, "DeLong") if out.delong else (None, None),
        "acc": (out.mcnemar.p, f"McNemar ({out.mcnemar.method})"),
        "balanced_acc": (None, None),
    }
    for key, (point, low, high) in intervals.items():
        p, test = tests[key]
        setattr(out, key, Difference(*values[key], point, low, high, p, test, out.n, key))
    return out


# ----------------------------------------------------------------------------- vs best
@dataclass
class BestComparison:
    """Every job against the best one (chosen on validation)."""

    best: str
    metric: str
    best_value: float
    comparisons: dict[str, PairedComparison]  # job name -> comparison (all but the best)

    def cell(self, job: str) -> str:
        if job == self.best:
            return f"best ({self.metric} {self.best_value:.3f})"
        found = self.comparisons.get(job)
        return found.cell if found is not None else "not compared: no predictions"

    def sentences(self) -> list[str]:
        head = f"{self.best} is the best job by {self.metric} ({self.best_value:.3f})."
        return [head, *(c.sentence for c in self.comparisons.values())]

    def to_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "metric": self.metric,
            "best_value": self.best_value,
            "comparisons": {k: v.to_dict() for k, v in self.comparisons.items()},
        }


def compare_to_best(
    jobs: Sequence[JobPredictions],
    selection: Mapping[str, float],
    metric: str = "val/auroc",
    higher_is_better: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
) -> BestComparison | None:
    """Pick the best job by ``selection`` (its ``metric`` per job name, from validation) and
    compare every other job with it on the test predictions.

    Jobs without a finite selection value cannot be the best but are still compared.
    Returns None when no job has a finite value.
    """
    ranked = [j for j in jobs if j.name in selection and math.isfinite(float(selection[j.name]))]
    if not ranked:
        return None
    sign = 1.0 if higher_is_better else -1.0
    best = max(ranked, key=lambda j: sign * float(selection[j.name]))  # first among ties
    comparisons = {
        j.name: compare(j, best, n_boot=n_boot, seed=seed) for j in jobs if j is not best
    }
    return BestComparison(best.name, metric, float(selection[best.name]), comparisons)
