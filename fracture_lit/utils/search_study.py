"""Where an Optuna search keeps its study, and how a job finds its own trial there.

The study is the one channel between the process that runs a search (the sweeper) and the
jobs it launches, whatever launched them (in process, joblib workers, SLURM tasks, DDP
ranks): no Python object crosses that boundary. A job knows its sweep folder and job
number from Hydra; trial ``n`` runs in job folder ``n`` and carries that folder in its
user attributes, so the job can check it found its own trial before reporting to it.

The sweep folder records where the study lives (``search.json``, the storage URL as
configured: a database URL with a password lands there as it does in Hydra's
``multirun.yaml``), so the report and the pruning callback open the same study. Optuna
itself is only imported by the functions that need it (about 3 s on 2 cores); the trial
lookup uses Optuna 2's storage API (hydra-optuna-sweeper pins Optuna below 3).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fracture_lit.errors import ConfigError
from fracture_lit.layout import SweepLayout

#: Trial user attribute: ``{"sweep_dir": ..., "num": n}``, the job the trial runs as.
JOB_ATTR = "fracture_lit.job"
#: Trial user attribute set by a job that stopped because the pruner said so.
PRUNED_EPOCH_ATTR = "fracture_lit.pruned_at_epoch"
#: ``hydra.sweeper.pruner`` values.
PRUNERS = ("median", "asha", "none")


def storage_url(storage: Any, sweep_dir: str | Path) -> Any:
    """``storage`` as given, or a SQLite file in the sweep folder when it is unset."""
    if storage not in (None, ""):
        return storage
    sweep = SweepLayout(Path(sweep_dir).resolve())
    sweep.folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{sweep.optuna_study}"


def open_storage(url: Any) -> Any:
    """The study storage of ``url``; SQLite waits up to a minute for a lock (the jobs and
    the sweeper write to it concurrently)."""
    if not isinstance(url, str) or not url.startswith("sqlite"):
        return url
    import optuna

    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})


def uncached(study: Any) -> Any:
    """``study`` reading its database directly, without Optuna's in-process trial cache.

    Optuna wraps a database storage in a cache of the trials its own process created and
    never rereads them; but here the jobs write to those trials from their own processes
    (intermediate values, the pruned mark), and the sweeper must see what they wrote: the
    value a pruned trial is told, the samplers' view of pruned trials.
    """
    study._storage = getattr(study._storage, "_backend", study._storage)
    return study


def write_search_record(sweep_dir: str | Path, record: Mapping[str, Any]) -> Path:
    """Record where the study lives and how it is pruned (rewritten on every start)."""
    path = SweepLayout(Path(sweep_dir)).search_record
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(record), indent=1, default=str))
    tmp.replace(path)
    return path


def read_search_record(sweep_dir: str | Path) -> dict[str, Any] | None:
    """The sweep's search record, or None when the folder is not an Optuna search."""
    try:
        record = json.loads((SweepLayout(Path(sweep_dir)).search_record).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def pruner_settings(name: Any, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The checked settings of pruner ``name`` from ``hydra.sweeper.pruners.<name>``."""
    name = str(name).lower() if name is not None else "none"
    if name not in PRUNERS:
        raise ConfigError("hydra.sweeper.pruner", name, f"choose one of {', '.join(PRUNERS)}")
    chosen = dict((settings or {}).get(name) or {})
    for key, value in chosen.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (value == "auto" or (number and value >= 0)):
            raise ConfigError(
                f"hydra.sweeper.pruners.{name}.{key}", value, "must be a number >= 0 (or auto)"
            )
    return {"name": name, **chosen}


def make_pruner(settings: Mapping[str, Any] | None) -> Any:
    """The Optuna pruner of ``{"name": median|asha|none, **its settings}``.

    Pruners keep no state of their own: what they decide from (every trial's intermediate
    values, the rungs ASHA promoted) lives in the study, so a resumed search prunes as
    the killed one would have.
    """
    import optuna

    settings = dict(settings or {"name": "none"})
    name = settings.pop("name", "none")
    if name == "median":
        return optuna.pruners.MedianPruner(**settings)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(**settings)
    return optuna.pruners.NopPruner()


def open_study(record: Mapping[str, Any]) -> Any:
    """The recorded study, with its pruner (the sampler is irrelevant to readers)."""
    import optuna

    study = optuna.load_study(
        study_name=record["study_name"],
        storage=open_storage(record["storage"]),
        sampler=optuna.samplers.RandomSampler(),
        pruner=make_pruner(record.get("pruner")),
    )
    return uncached(study)


def job_attr(sweep_dir: str | Path, num: int) -> dict[str, Any]:
    """The :data:`JOB_ATTR` value of the trial that runs as job ``num`` of the sweep."""
    return {"sweep_dir": str(Path(sweep_dir).resolve()), "num": int(num)}


def trial_of_job(study: Any, sweep_dir: str | Path, job_num: int) -> Any:
    """The running trial that runs as job ``job_num`` of ``sweep_dir`` (trial n = job n).

    Raises ``LookupError`` with the reason when there is none: reporting to another
    trial's record would corrupt the search.
    """
    import optuna
    from optuna.trial import TrialState

    try:
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(
            study._study_id, int(job_num)
        )
    except KeyError as error:
        raise LookupError(f"study {study.study_name!r} has no trial {job_num}") from error
    frozen = study._storage.get_trial(trial_id)
    recorded = frozen.user_attrs.get(JOB_ATTR)
    if recorded != job_attr(sweep_dir, job_num):
        raise LookupError(f"trial {job_num} of the study is not job {job_num} of {sweep_dir}")
    if frozen.state != TrialState.RUNNING:
        raise LookupError(f"trial {job_num} is {frozen.state.name}, not running")
    return optuna.trial.Trial(study, trial_id)


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
