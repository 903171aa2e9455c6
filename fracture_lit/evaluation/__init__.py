"""Evaluation: a set of predictions scored honestly, the one producer of score blocks.

* :mod:`.predictions`: :class:`~.predictions.SplitPredictions`, the probabilities of one
  split with each image's path, label and metadata (numpy, no torch);
* :mod:`.subgroups`: the image attributes a run is scored by (region, view, hardware) and
  how a prediction set splits by them (no torch: reports read the constants);
* :mod:`.scoring`: :func:`~.scoring.score`, the metrics / ci95 / confusion_matrix / n block
  of metrics.json, used by the module's epoch end and by eval alike, and its per-subgroup
  forms.

Below :mod:`fracture_lit.data` and :mod:`fracture_lit.models`: it imports only
:mod:`fracture_lit.stats`, :mod:`fracture_lit.metrics` and :mod:`fracture_lit.errors`.
Import the submodules directly (this file imports nothing, so the reports can read the
subgroup constants without torch).
"""
