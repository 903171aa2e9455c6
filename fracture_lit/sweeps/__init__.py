"""Hydra callbacks of sweeps (registered in ``conf/hydra/default.yaml``): they run in the
launching process, around every launcher (basic, joblib, local_parallel, SLURM)."""
