"""Paper C's two-stage pipeline: ``python -m fracture_lit.pipeline [overrides]``.

1. Stage 1 trains a binary fracture detector (``stage1`` overrides of ``conf/train.yaml``,
   by default ``experiment=fracatlas_inception_detector``) and picks its Youden threshold
   on validation.
2. The best stage-1 checkpoint scores every image of the stage-2 dataset, decoded and
   normalised the way stage 1 saw its own images; ``p(fractured) >= threshold`` passes
   (the Youden threshold is a midpoint between validation scores, so ``>=`` and the
   metrics' ``>`` agree there, and ``threshold=0`` passes everything: stage 2 unfiltered).
3. Stage 2 (``stage2`` overrides, by default ``experiment=bone_break_subtypes``) trains and
   tests the subtype classifier on the passed images only (``data.subset_file``).
4. ``pipeline.json`` and a table summarise both stages and the end-to-end estimate.

Each stage is an ordinary training run (:func:`fracture_lit.tasks.training.run`) in
``<run>/stage1`` and ``<run>/stage2``, so its folder is the same as a
``python -m fracture_lit.train`` run's.
Stages run in this process: multi-device (DDP) trainers are refused, since DDP would
relaunch this script in every rank.
The work is :mod:`fracture_lit.tasks.pipeline`.
"""

from __future__ import annotations

from omegaconf import DictConfig

from fracture_lit.tasks.entry import task_entry


@task_entry("pipeline")
def main(cfg: DictConfig) -> None:
    # Imported once the command line is checked: the task loads torch and Lightning.
    from fracture_lit.tasks.pipeline import run

    run(cfg)


if __name__ == "__main__":
    main()
