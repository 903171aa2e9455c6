"""Every DDP rank SLURM starts begins from the checkpoint rank 0 chose.

Rank 0 applies the job folder's resume policy (``utils/job_folder.py``): it may continue
from ``last.ckpt`` or move a failed attempt away. Lightning's local DDP children receive
that decision through the environment; under ``srun`` every rank is started by SLURM at
once, possibly on another node, so the others would otherwise decide for themselves, on a
folder rank 0 is changing, and a requeued job would resume on rank 0 only. Here rank 0
writes its choice to ``<run folder>/.resume/slurm_start.json`` for this start of this job
(``SLURM_JOB_ID`` and ``SLURM_RESTART_COUNT``) and the other ranks wait for it. Nothing
but rank 0 writes in the run folder.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from fracture_lit.layout import RunLayout
from fracture_lit.utils.job_folder import read_status

log = logging.getLogger(__name__)

#: How long the other ranks wait for rank 0's decision (it may be moving a failed attempt).
WAIT_FOR_RANK_ZERO_S = 600.0


def start_record_path(folder: str | Path) -> Path:
    return RunLayout(Path(folder)).slurm_start


def attempt_key(environ: Mapping[str, str]) -> str:
    """This start of this SLURM job: its id and how often it was requeued."""
    return f"{environ.get('SLURM_JOB_ID', '?')}.{environ.get('SLURM_RESTART_COUNT', '0')}"


def _ranks(environ: Mapping[str, str]) -> tuple[int, int]:
    return int(environ.get("SLURM_PROCID", "0")), int(environ.get("SLURM_NTASKS", "1"))


def _read(folder: str | Path) -> dict[str, Any]:
    try:
        return json.loads(start_record_path(folder).read_text())
    except (OSError, ValueError):
        return {}


def _write(folder: str | Path, record: dict[str, Any]) -> None:
    path = start_record_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)  # the other ranks never read half a record


def share_start_checkpoint(
    cfg: DictConfig,
    environ: Mapping[str, str],
    timeout: float = WAIT_FOR_RANK_ZERO_S,
    poll: float = 0.2,
) -> None:
    """Rank 0 records ``cfg.ckpt_path``; every other rank waits for it and adopts it."""
    rank, ntasks = _ranks(environ)
    if ntasks < 2:
        return
    folder, key = Path(cfg.paths.output_dir), attempt_key(environ)
    if rank == 0:
        _write(folder, {"attempt": key, "ckpt_path": cfg.get("ckpt_path")})
        return
    deadline = time.monotonic() + timeout
    record = _read(folder)
    while record.get("attempt") != key:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"rank {rank} waited {timeout:.0f}s for rank 0's start in "
                f"{start_record_path(folder)}: rank 0 never got to training in this folder "
                "(see its log there). Ranks started by hand with srun need one folder: "
                "hydra.run.dir=<folder>"
            )
        time.sleep(poll)
        record = _read(folder)
    if record.get("ended"):
        raise RuntimeError(
            f"rank 0 of SLURM job {key.split('.')[0]} ended before training started; its "
            f"log in {folder} says why"
        )
    with open_dict(cfg):
        cfg.ckpt_path = record.get("ckpt_path")
    if cfg.ckpt_path:
        log.info("Rank %d resumes from %s, as rank 0 does", rank, cfg.ckpt_path)


def record_rank_zero_end(folder: str | Path, environ: Mapping[str, str]) -> None:
    """On rank 0, after its job returned: when it never reached training (a refused
    folder, an error before the fit), tell the waiting ranks to stop rather than wait."""
    rank, ntasks = _ranks(environ)
    key = attempt_key(environ)
    if rank != 0 or ntasks < 2 or _read(folder).get("attempt") == key:
        return
    _write(folder, {"attempt": key, "ended": True})


def done_before_start(folder: str | Path, resume: str) -> bool:
    """Whether rank 0 will find this job done and keep it (``resume=auto``), leaving the
    other ranks nothing to join. Safe to read before rank 0 starts: this job cannot make
    the folder done until every rank has joined its process group."""
    status = read_status(Path(folder)) or {}
    return resume == "auto" and status.get("status") == "done"
