"""What a sweep does besides running its jobs: the Hydra callbacks of ``conf/hydra/default.yaml``."""
