"""Inference: a trained model run on new images, exactly as its training run fed it.

* :mod:`.pipeline`: file -> the tensor the network saw in training, and probabilities out
  (test-time augmentation, temperature);
* :mod:`.split`: a model over a datamodule split, kept as
  :class:`~fracture_lit.evaluation.predictions.SplitPredictions`;
* :mod:`.ensemble`: several checkpoints (a list, a sweep folder) as one model.

Above :mod:`fracture_lit.models` and :mod:`fracture_lit.data` (it loads checkpoints and
reads images), below the review, reports and entry points. Import the submodules directly.
"""
