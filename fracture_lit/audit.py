"""Audit a dataset split for leakage: ``python -m fracture_lit.audit data=<name> [overrides]``.

Composes ``conf/audit.yaml`` (the same ``data`` and ``paths`` groups as training), builds
the datamodule, lets it group and split the files exactly as a training run would
(:meth:`~fracture_lit.data.base.FractureDataModule.prepare_split`; nothing is decoded into
the image cache), and runs :func:`~fracture_lit.data.leakage.audit_leakage` on the result.
It prints the duplicate groups within and across splits and the share of test and val
images with a twin in train, and writes ``leakage_audit.json`` and ``leakage_audit.txt``
to the run folder.

``audit.split`` picks what is audited:

* ``given`` (default): the dataset's own published split (``given_split``), the one papers
  report on. A run with ``data.use_given_split=true`` also carves a val split out of given
  train; that carving is ours (group-aware), so it is not what this mode is about, and it
  would move some leaking groups from train/test to val/test and hide part of the leak.
  Samples without a given split (FracAtlas ships none) are audited on our split.
* ``ours``: the split a run makes with ``data.use_given_split=false``.

With ``data.manifest`` set, the manifest's split is audited (``audit.split`` is ignored),
so the split of any finished run can be checked from its ``split_manifest.csv``.
The work is :mod:`fracture_lit.tasks.auditing`.
"""

from __future__ import annotations

from omegaconf import DictConfig

from fracture_lit.tasks.entry import task_entry


@task_entry("audit")
def main(cfg: DictConfig) -> None:
    # Imported once the command line is checked: the task loads the data stack.
    from fracture_lit.tasks.auditing import run

    run(cfg)


if __name__ == "__main__":
    main()
