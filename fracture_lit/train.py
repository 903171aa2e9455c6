"""Train a fracture classifier: ``python -m fracture_lit.train [overrides]``.

Composes ``conf/train.yaml``, instantiates the datamodule, model, callbacks, loggers and
trainer from their ``_target_`` blocks, fits, then evaluates the best checkpoint on the
validation and test splits and prints the table. ``-m`` runs a sweep; an Optuna search
(``hparams_search=...``) optimises what ``main`` returns: the monitored metric of the best
checkpoint. The work is :mod:`fracture_lit.tasks.training`.
"""

from __future__ import annotations

from omegaconf import DictConfig

from fracture_lit.tasks.entry import task_entry


@task_entry("train")
def main(cfg: DictConfig) -> float:
    # Imported once the command line is checked: the task loads torch and Lightning.
    from fracture_lit.tasks.training import objective, run

    return objective(run(cfg), cfg.monitor)


if __name__ == "__main__":
    main()
