"""The one owner of folder layouts: what a run, job, review and sweep folder holds, and where.

Every module that reads or writes a file of a run folder asks these objects for its path;
no other module spells a file name of these folders. (The Hydra configs name the folders
Lightning and the callbacks write into: ``checkpoints``, ``csv``, ``review``,
``split_manifest.csv``; ``tests/test_layout.py`` holds them to this module.)

::

    <run>/                          RunLayout: a training run, a sweep job (<sweep>/<n>/),
      metrics.json                    an evaluation; predict, export, audit and the pipeline
      config.yaml                     write their files into such a folder too
      .hydra/{config,overrides,hydra}.yaml
      split_manifest.csv
      checkpoints/{last.ckpt,epoch_NNN.ckpt}
      csv/metrics.csv
      review/                       ReviewLayout
        <split>/{predictions.csv,misclassified.csv,subgroups.json,
                 confusion.png,roc.png,pr.png,reliability.png,
                 localization.npz,localization/{best,worst}_NN.png}
        gradcam/{<split>_<kind>_NN.png,index.csv}
      report.html  model_card.md  <job>.log  *.err  wandb/
      .resume/{overrides.json,hydra/,owner.lock,slurm_start.json}   .attempts/<n>/
      predictions.csv  gradcam/       (predict)
      model.onnx  export.json         (export; export.json beside any output=)
      leakage_audit.{json,txt}        (audit; a training run writes the json too)
      label_mapping.json  scored/<stage>.csv   (a merged dataset; leave-one-dataset-out)
      pipeline.json  stage1/  stage2/  stage1_scores_on_stage2.csv  stage2_subset.csv
      lr_find.{csv,png}  tune.json    (tune)
    <sweep>/                        SweepLayout
      0/ 1/ ...                       job folders (RunLayout)
      results.csv  results.md  report.html  model_card.md  vs_best.json
      cross_dataset.json              (leave-one-dataset-out)
      optuna.db  optimization_results.yaml  search.json  best_config.yaml  slurm_jobs.json
      .resume/sweep.json  .gpu_slots/  .submitit/<array>_<n>/*_log.err

Pure Python (stdlib only): the report reads folders without torch, and every layer may
import this module.
"""

from fracture_lit.layout.review import ReviewLayout
from fracture_lit.layout.run import RunLayout
from fracture_lit.layout.sweep import SweepLayout

__all__ = ["ReviewLayout", "RunLayout", "SweepLayout"]
