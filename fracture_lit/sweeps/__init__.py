"""What a sweep does besides running its jobs: the Hydra callbacks of
``conf/hydra/default.yaml``, which run in the launching process around every launcher
(basic, joblib, local_parallel, SLURM)."""
