"""Evaluate a checkpoint: ``python -m fracture_lit.eval ckpt_path=... [data=...] [split=...]``.

Scores the model on a split of any dataset whose classes match (binary fracture datasets
all do: train on FracAtlas, evaluate on multi-region for external validation), at the
threshold its training run chose on *validation* (or one you give), with bootstrap 95%
intervals, per-region metrics where the dataset records regions (FracAtlas), ROC/PR/
confusion PNGs, predictions, Grad-CAM panels and an offline HTML report, all in
``outputs/eval/<date>/<time>_<id>/``. ``logger=wandb`` logs it as a W&B run of job_type eval.
``ckpt_path`` may also list several checkpoints or name a sweep folder: an ensemble.

Evaluating on the dataset the checkpoint was trained on reuses that run's
``split_manifest.csv``, so "test" means the same images it meant during training; a test
split redrawn with another seed would contain training images.
The work is :mod:`fracture_lit.tasks.evaluating`.
"""

from __future__ import annotations

from omegaconf import DictConfig

from fracture_lit.tasks.entry import task_entry


@task_entry("eval", also=(FileNotFoundError,))
def main(cfg: DictConfig) -> None:
    # Imported once the command line is checked: the task loads torch.
    from fracture_lit.tasks.evaluating import run

    run(cfg)


if __name__ == "__main__":
    main()
