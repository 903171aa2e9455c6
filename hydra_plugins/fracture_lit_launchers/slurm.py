"""``hydra/launcher=slurm``: submitit's SLURM launcher that can detach and be resumed.

On top of ``hydra-submitit-launcher``'s ``SlurmLauncher`` (one SLURM array task per sweep
job; submitit owns requeueing on the warning signal):

* the submission is recorded in ``<sweep folder>/slurm_jobs.json``
  (``fracture_lit.utils.slurm_jobs``), so the sweep can be watched and reported on without
  the process that submitted it;
* ``hydra.launcher.detach=true`` returns as soon as the jobs are queued: they run on
  without the submitting shell, and ``python -m fracture_lit.report <sweep folder>``
  later collects what has finished and marks the rest pending or running;
* running the same sweep again (``hydra.sweep.dir=<sweep folder>``) adopts the jobs still
  pending or running in the queue instead of submitting them a second time into the same
  folders; the others are submitted again and continue as the resume policy says;
* a multi-task job (``trainer.devices`` tasks on each of ``trainer.num_nodes`` nodes, the
  DDP ranks SLURM starts) has one writer: ranks other than 0 run the same job in the same
  folder without Hydra's ``.hydra/`` files, log to ``<job name>_rank_<n>.log`` (as
  Lightning's local DDP children do), take rank 0's starting checkpoint
  (``fracture_lit.utils.slurm_ranks``) and leave a job that is already done to rank 0.
"""

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, run_job, setup_globals
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf, open_dict

log = logging.getLogger("fracture_lit.slurm")


@dataclass
class ResumableSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.fracture_lit_launchers.slurm.ResumableSlurmLauncher"
    # Return once the jobs are queued instead of waiting for them.
    detach: bool = False


ConfigStore.instance().store(
    group="hydra/launcher",
    name="fracture_lit_slurm",
    node=ResumableSlurmConf(),
    provider="fracture_lit",
)


class ResumableSlurmLauncher(SlurmLauncher):
    """submitit's SLURM launcher with a submission record, adoption, ``detach`` and one
    writer per multi-task job."""

    def __init__(self, detach: bool = False, **params: Any) -> None:
        super().__init__(**params)
        self.detach = bool(detach)

    def __call__(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[type, Singleton],
    ) -> JobReturn:
        """One task of the SLURM job (submitit unpickles the launcher and calls this)."""
        import submitit
        from hydra.core.hydra_config import HydraConfig

        from fracture_lit.utils.slurm_ranks import done_before_start, record_rank_zero_end

        assert self.hydra_context is not None and self.config is not None
        assert self.task_function is not None
        environment = submitit.JobEnvironment()
        rank = environment.global_rank
        overrides = list(sweep_overrides)
        if rank:
            name = f"{self.config.hydra.job.name}_rank_{rank}"
            overrides += ["hydra.output_subdir=null", f"hydra.job.name={name}"]
        Singleton.set_state(singleton_state)
        setup_globals()
        config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(config.hydra.job):
            config.hydra.job.id = environment.job_id
            config.hydra.job.num = job_num
        HydraConfig.instance().set_config(config)
        folder = Path(str(OmegaConf.select(config, job_dir_key))) / str(
            OmegaConf.select(config, "hydra.sweep.subdir")
        )
        if rank and done_before_start(folder, str(config.get("resume") or "auto")):
            log.info("%s is done: rank 0 keeps it, rank %d has nothing to join.", folder, rank)
            return self._empty_return(sweep_overrides)
        result = run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=config,
            job_dir_key=job_dir_key,
            job_subdir_key="hydra.sweep.subdir",
        )
        record_rank_zero_end(folder, os.environ)
        return result

    def _executor(self) -> Any:
        """submitit's executor with this config's parameters (as the parent class builds it)."""
        import submitit

        params = dict(self.params)
        init_params: dict[str, Any] = {"folder": params["submitit_folder"]}
        if "max_num_timeout" in params:
            init_params["slurm_max_num_timeout"] = params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        skip = {"submitit_folder", "max_num_timeout"}
        executor.update_parameters(
            **{
                (key if key in base else f"{self._EXECUTOR}_{key}"): value
                for key, value in params.items()
                if key not in skip
            }
        )
        return executor

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        import submitit

        from fracture_lit.utils.slurm_jobs import read_submission, record_submission
        from fracture_lit.utils.slurm_jobs import unfinished_states as queued

        assert self.config is not None
        sweeper = str(self.config.hydra.sweeper.get("_target_", ""))
        if self.detach and "optuna" in sweeper.lower():
            raise ValueError(
                "hydra.launcher.detach=true cannot be used with hparams_search=optuna: each "
                "Optuna trial needs the previous trials' results. Drop detach, or run the "
                "search itself as a SLURM job."
            )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("SLURM sweep folder: %s", sweep_dir)

        previous = read_submission(sweep_dir)
        still_queued = queued(sweep_dir) if previous else {}
        folder = self.params["submitit_folder"]
        adopted: dict[int, Any] = {}
        to_submit: list[tuple[int, list[str]]] = []
        for offset, overrides in enumerate(job_overrides):
            num = initial_job_idx + offset
            if num in still_queued and previous[num]["overrides"] == list(overrides):
                job_id = str(previous[num]["slurm_job_id"])
                log.info("\t#%d : already %s as SLURM job %s", num, still_queued[num], job_id)
                adopted[num] = submitit.SlurmJob(folder=folder, job_id=job_id)
            else:
                log.info("\t#%d : %s", num, " ".join(filter_overrides(overrides)))
                to_submit.append((num, list(overrides)))

        jobs: dict[int, Any] = dict(adopted)
        if to_submit:
            params = [
                (overrides, "hydra.sweep.dir", num, f"job_id_for_{num}", Singleton.get_state())
                for num, overrides in to_submit
            ]
            submitted = self._executor().map_array(self, *zip(*params, strict=True))
            for (num, _), job in zip(to_submit, submitted, strict=True):
                jobs[num] = job
        record_submission(
            sweep_dir,
            {
                num: {
                    "overrides": list(job_overrides[num - initial_job_idx]),
                    "slurm_job_id": job.job_id,
                }
                for num, job in jobs.items()
            },
        )
        order = sorted(jobs)
        if self.detach:
            ids = ", ".join(str(jobs[num].job_id) for num in order)
            log.info(
                "Detached: %d SLURM job(s) queued (%s); they run on without this shell. "
                "Watch them with `squeue`, collect the results with "
                "`python -m fracture_lit.report %s`.",
                len(order),
                ids,
                sweep_dir,
            )
            return [self._empty_return(job_overrides[num - initial_job_idx]) for num in order]
        return [jobs[num].results()[0] for num in order]

    @staticmethod
    def _empty_return(overrides: Sequence[str]) -> JobReturn:
        """No result and no error: what the sweeper gets for a job left running (detach),
        and what a rank other than 0 returns (submitit hands the sweeper rank 0's)."""
        result = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
        result.return_value = None
        return result
