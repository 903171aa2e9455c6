"""A tiny Hydra app for timing how an Optuna search schedules its trials.

``python benchmarks/search_app.py -m hydra.sweep.dir=<folder> [overrides]`` runs a search
with fracture_lit's own sweeper (``hydra/sweeper=fracture_lit_optuna``) and Hydra's
joblib launcher (``hparams_search=optuna`` with ``hydra/launcher=local_parallel``), but
each trial only sleeps: trial ``n`` sleeps ``long_s`` when ``n % long_every == 0``, else
``short_s``. Trial lengths are uneven by construction and the same in every mode, so the
wall time of the search measures the scheduling alone. Each job writes its job record
(``metrics.json`` with ``started_at`` / ``ended_at``) as a training job does.

Used by ``benchmarks/bench_search.py`` (synchronous vs asynchronous trials) and
``tests/test_search_async.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

ConfigStore.instance().store(
    name="search_app",
    node={
        "defaults": [
            {"override hydra/sweeper": "fracture_lit_optuna"},
            {"override hydra/sweeper/sampler": "random"},
            {"override hydra/launcher": "joblib"},
            "_self_",
        ],
        "x": 0.5,
        "long_s": 6.0,
        "short_s": 1.0,
        "long_every": 4,
        "hydra": {
            "mode": "MULTIRUN",
            "sweep": {"dir": "search_app_sweep", "subdir": "${hydra.job.num}"},
            "launcher": {"n_jobs": 2},
            "sweeper": {
                "sampler": {"seed": 0},
                "direction": "maximize",
                "study_name": "search_app",
                "n_trials": 12,
                "n_jobs": 2,
                "pruner": "none",
                "asynchronous": True,
                "params": {"x": "interval(0.0, 1.0)"},
            },
        },
    },
)


def trial_seconds(num: int, cfg: DictConfig) -> float:
    """How long trial ``num`` runs: long every ``long_every`` trials, short otherwise."""
    return float(cfg.long_s if num % int(cfg.long_every) == 0 else cfg.short_s)


@hydra.main(version_base="1.3", config_path=None, config_name="search_app")
def main(cfg: DictConfig) -> float:
    from fracture_lit.results.job_record import job_record

    hydra_cfg = HydraConfig.get()
    record: dict = {"job": int(hydra_cfg.job.num)}
    with job_record(record, Path(hydra_cfg.runtime.output_dir)):
        time.sleep(trial_seconds(int(hydra_cfg.job.num), cfg))
    return float(cfg.x)


if __name__ == "__main__":
    main()
