"""A sweep folder: numbered job folders and what the sweep writes beside them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fracture_lit.layout.run import RunLayout


@dataclass(frozen=True)
class SweepLayout:
    """The files of a sweep folder: numbered job folders and what the sweep writes beside."""

    folder: Path

    RESULTS_CSV = "results.csv"
    RESULTS_MD = "results.md"
    REPORT = "report.html"
    #: The sweep's model card: every job with its status and headline metric.
    MODEL_CARD = RunLayout.MODEL_CARD
    VS_BEST = "vs_best.json"
    #: Leave-one-dataset-out: internal vs external per held-out source, every figure.
    CROSS_DATASET = "cross_dataset.json"
    OPTUNA_STUDY = "optuna.db"
    OPTUNA_RESULTS = "optimization_results.yaml"
    #: ``{storage, study_name, directions, monitor, pruner}`` of an Optuna search.
    SEARCH_RECORD = "search.json"
    #: The best trial's configuration as a primary config, ready to run.
    BEST_CONFIG = "best_config.yaml"
    SLURM_JOBS = "slurm_jobs.json"
    #: ``.resume/sweep.json`` (relative): the command ``python -m fracture_lit.resume`` reruns.
    RESUME_RECORD = Path(".resume") / "sweep.json"
    GPU_SLOTS = ".gpu_slots"
    SUBMITIT = ".submitit"

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder))

    def job(self, num: int) -> RunLayout:
        """Job ``num``'s folder (``<sweep>/<num>/``), whether it exists yet or not."""
        return RunLayout(self.folder / str(num))

    def job_folders(self) -> list[Path]:
        """The numbered job folders (``0``, ``1``, ... ``10``), in numeric order."""
        return sorted(
            (p for p in self.folder.iterdir() if p.is_dir() and p.name.isdigit()),
            key=lambda p: int(p.name),
        )

    def nested_sweeps(self) -> list[Path]:
        """Sweep folders below this one (a date folder holds several): for a hint."""
        jobs = {p.parent for p in self.folder.glob(f"**/[0-9]*/{RunLayout.HYDRA}")}
        return sorted({p.parent for p in jobs if p.name.isdigit()})

    @property
    def results_csv(self) -> Path:
        return self.folder / self.RESULTS_CSV

    @property
    def results_md(self) -> Path:
        return self.folder / self.RESULTS_MD

    @property
    def report(self) -> Path:
        return self.folder / self.REPORT

    @property
    def model_card(self) -> Path:
        return self.folder / self.MODEL_CARD

    @property
    def vs_best(self) -> Path:
        return self.folder / self.VS_BEST

    @property
    def cross_dataset(self) -> Path:
        return self.folder / self.CROSS_DATASET

    @property
    def optuna_study(self) -> Path:
        """``optuna.db``: the SQLite study a resumed Optuna search continues."""
        return self.folder / self.OPTUNA_STUDY

    @property
    def optuna_results(self) -> Path:
        return self.folder / self.OPTUNA_RESULTS

    @property
    def search_record(self) -> Path:
        """``search.json``: where the study of an Optuna search lives (the jobs' pruning
        callback and the report open the study it names)."""
        return self.folder / self.SEARCH_RECORD

    @property
    def best_config(self) -> Path:
        return self.folder / self.BEST_CONFIG

    @property
    def slurm_jobs(self) -> Path:
        """``slurm_jobs.json``: job number, overrides and SLURM id of every submission."""
        return self.folder / self.SLURM_JOBS

    @property
    def resume_record(self) -> Path:
        return self.folder / self.RESUME_RECORD

    @property
    def gpu_slots(self) -> Path:
        """``.gpu_slots/``: the lock files parallel local jobs claim their GPUs with."""
        return self.folder / self.GPU_SLOTS

    @property
    def submitit(self) -> Path:
        return self.folder / self.SUBMITIT

    def submitit_error_logs(self, num: int) -> list[Path]:
        """Job ``num``'s submitit logs (``.submitit/<array id>_<num>/*_log.err``), oldest
        first within each folder (the layout of Hydra's submitit launcher)."""
        if not self.submitit.is_dir():
            return []
        found: list[Path] = []
        for folder in self.submitit.iterdir():
            if folder.is_dir() and folder.name.endswith(f"_{num}"):
                found += sorted(folder.glob("*_log.err"), key=lambda p: p.stat().st_mtime)
        return found
