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
      leakage_audit.{json,txt}        (audit)
      pipeline.json  stage1/  stage2/  stage1_scores_on_stage2.csv  stage2_subset.csv
      lr_find.{csv,png}  tune.json    (tune)
    <sweep>/                        SweepLayout
      0/ 1/ ...                       job folders (RunLayout)
      results.csv  results.md  report.html  model_card.md  vs_best.json
      optuna.db  optimization_results.yaml  search.json  best_config.yaml  slurm_jobs.json
      .resume/sweep.json  .gpu_slots/  .submitit/<array>_<n>/*_log.err

Pure Python (stdlib only): the report reads folders without torch, and every layer may
import this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ReviewLayout", "RunLayout", "SweepLayout"]


@dataclass(frozen=True)
class ReviewLayout:
    """``<run>/review/``: per split its predictions and plots, and the Grad-CAM panels."""

    folder: Path

    PREDICTIONS = "predictions.csv"
    MISCLASSIFIED = "misclassified.csv"
    #: ``{attribute: {value: scored block}}`` of one split (region, view, hardware).
    SUBGROUPS = "subgroups.json"
    CONFUSION = "confusion.png"
    ROC = "roc.png"
    PR = "pr.png"
    RELIABILITY = "reliability.png"
    GRADCAM = "gradcam"
    GRADCAM_INDEX = "index.csv"
    #: Localization against annotated regions (``data.regions``): heatmaps and per-image
    #: scores, best/worst panels, and predict's block (train/eval keep it in metrics.json).
    LOCALIZATION = "localization.npz"
    LOCALIZATION_PANELS = "localization"
    LOCALIZATION_BLOCK = "localization.json"

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder))

    def split(self, split: str) -> Path:
        """``review/<split>/``: one split's files."""
        return self.folder / split

    def predictions(self, split: str) -> Path:
        return self.split(split) / self.PREDICTIONS

    def misclassified(self, split: str) -> Path:
        return self.split(split) / self.MISCLASSIFIED

    def subgroups(self, split: str) -> Path:
        return self.split(split) / self.SUBGROUPS

    def confusion(self, split: str) -> Path:
        return self.split(split) / self.CONFUSION

    def roc(self, split: str) -> Path:
        return self.split(split) / self.ROC

    def pr(self, split: str) -> Path:
        return self.split(split) / self.PR

    def reliability(self, split: str) -> Path:
        return self.split(split) / self.RELIABILITY

    def localization(self, split: str) -> Path:
        """``<split>/localization.npz``: what the localization scores are recomputed from."""
        return self.split(split) / self.LOCALIZATION

    def localization_panel(self, split: str, kind: str, number: int) -> Path:
        """``<split>/localization/<kind>_NN.png`` (kind: ``best`` or ``worst``)."""
        return self.split(split) / self.LOCALIZATION_PANELS / f"{kind}_{number:02d}.png"

    def localization_block(self, split: str) -> Path:
        return self.split(split) / self.LOCALIZATION_BLOCK

    def split_folders(self) -> list[Path]:
        """The reviewed splits' folders present (unordered; the Grad-CAM folder excluded)."""
        if not self.folder.is_dir():
            return []
        return [p for p in self.folder.iterdir() if p.is_dir() and p.name != self.GRADCAM]

    @property
    def gradcam(self) -> Path:
        return self.folder / self.GRADCAM

    @property
    def gradcam_index(self) -> Path:
        """``gradcam/index.csv``: file, kind, split, path, label, predicted, prob per panel."""
        return self.gradcam / self.GRADCAM_INDEX

    def gradcam_panel(self, split: str, kind: str, number: int) -> Path:
        """``gradcam/<split>_<kind>_NN.png`` (kind: ``fixed`` or ``worst``)."""
        return self.gradcam / f"{split}_{kind}_{number:02d}.png"


@dataclass(frozen=True)
class RunLayout:
    """The files of one job's folder: a training run or sweep job, or an evaluation (and
    the files predict, export, audit and the pipeline write into their own folders)."""

    folder: Path

    METRICS = "metrics.json"
    CONFIG = "config.yaml"
    HYDRA = ".hydra"
    HYDRA_CONFIG = "config.yaml"
    HYDRA_OVERRIDES = "overrides.yaml"
    HYDRA_RUNTIME = "hydra.yaml"
    SPLIT_MANIFEST = "split_manifest.csv"
    CHECKPOINTS = "checkpoints"
    LAST_CHECKPOINT = "last.ckpt"
    CSV_LOGS = "csv"
    METRICS_CSV = "metrics.csv"
    REVIEW = "review"
    REPORT = "report.html"
    #: Beside report.html: the run's model card (results/model_card.py).
    MODEL_CARD = "model_card.md"
    WANDB = "wandb"
    LR_CURVE = "lr_find.csv"
    LR_PLOT = "lr_find.png"
    TUNE_RECORD = "tune.json"
    #: ``.resume/``: the overrides (and Hydra files) of the job that first ran here.
    RESUME = ".resume"
    RESUME_OVERRIDES = "overrides.json"
    RESUME_HYDRA = "hydra"
    #: ``.attempts/<n>/``: what a failed attempt left, moved away by a fresh start.
    ATTEMPTS = ".attempts"
    PREDICT_CSV = "predictions.csv"
    PREDICT_GRADCAM = "gradcam"
    ONNX_MODEL = "model.onnx"
    EXPORT_REPORT = "export.json"
    LEAKAGE_JSON = "leakage_audit.json"
    LEAKAGE_TEXT = "leakage_audit.txt"
    PIPELINE = "pipeline.json"
    STAGE_SCORES = "stage1_scores_on_stage2.csv"
    STAGE_SUBSET = "stage2_subset.csv"

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder))

    # --------------------------------------------------------------- what every run has
    @property
    def metrics(self) -> Path:
        """``metrics.json``: the job record (status, error) and every score, written even
        when the job fails; its absence means the process died."""
        return self.folder / self.METRICS

    @property
    def config(self) -> Path:
        """``config.yaml``: the resolved config, written once the Trainer exists."""
        return self.folder / self.CONFIG

    @property
    def hydra(self) -> Path:
        return self.folder / self.HYDRA

    @property
    def hydra_config(self) -> Path:
        """``.hydra/config.yaml``: the composed (unresolved) config, there from the start."""
        return self.hydra / self.HYDRA_CONFIG

    @property
    def hydra_overrides(self) -> Path:
        return self.hydra / self.HYDRA_OVERRIDES

    @property
    def hydra_runtime(self) -> Path:
        """``.hydra/hydra.yaml``: Hydra's own config (the chosen options of every group)."""
        return self.hydra / self.HYDRA_RUNTIME

    def configs(self) -> tuple[Path, Path]:
        """The resolved config, then Hydra's composed one: what to read, in that order."""
        return self.config, self.hydra_config

    def has_record(self) -> bool:
        """Whether a job ran here: its ``metrics.json``, its config or Hydra's files."""
        return self.metrics.is_file() or self.config.is_file() or self.hydra.is_dir()

    @property
    def split_manifest(self) -> Path:
        """``split_manifest.csv``: which image went to which split (reused by eval)."""
        return self.folder / self.SPLIT_MANIFEST

    @property
    def checkpoints(self) -> Path:
        return self.folder / self.CHECKPOINTS

    @property
    def last_checkpoint(self) -> Path:
        """``checkpoints/last.ckpt``: the file a killed or preempted run resumes from."""
        return self.checkpoints / self.LAST_CHECKPOINT

    @property
    def csv_logs(self) -> Path:
        return self.folder / self.CSV_LOGS

    @property
    def metrics_csv(self) -> Path:
        """``csv/metrics.csv``: the per-epoch metrics of Lightning's CSV logger."""
        return self.csv_logs / self.METRICS_CSV

    def find_metrics_csv(self) -> Path | None:
        """``csv/metrics.csv``, else the newest ``csv/**/metrics.csv`` (a versioned logger)."""
        if self.metrics_csv.is_file():
            return self.metrics_csv
        found = sorted(
            self.csv_logs.glob(f"**/{self.METRICS_CSV}"), key=lambda p: p.stat().st_mtime
        )
        return found[-1] if found else None

    @property
    def review(self) -> ReviewLayout:
        return ReviewLayout(self.folder / self.REVIEW)

    @property
    def report(self) -> Path:
        return self.folder / self.REPORT

    @property
    def model_card(self) -> Path:
        return self.folder / self.MODEL_CARD

    def logs(self) -> list[Path]:
        """Hydra's job logs (``<job name>.log``: ``train.log``, ``eval.log``), newest first."""
        return sorted(self.folder.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True)

    def error_logs(self) -> list[Path]:
        """``*.err`` files a scheduler left in the folder, oldest first."""
        return sorted(self.folder.glob("*.err"), key=lambda p: p.stat().st_mtime)

    # --------------------------------------------------------------- resume bookkeeping
    @property
    def resume_record(self) -> Path:
        """``.resume/overrides.json``: the overrides of the job that first ran here."""
        return self.folder / self.RESUME / self.RESUME_OVERRIDES

    @property
    def resume_hydra(self) -> Path:
        """``.resume/hydra/``: that job's copy of ``.hydra/``, put back if another job
        is refused the folder."""
        return self.folder / self.RESUME / self.RESUME_HYDRA

    @property
    def owner_lock(self) -> Path:
        """``.resume/owner.lock``: the lock of the one process training this job, naming it."""
        return self.folder / self.RESUME / "owner.lock"

    @property
    def slurm_start(self) -> Path:
        """``.resume/slurm_start.json``: the checkpoint rank 0 of a SLURM-started job chose
        for this start, which the other ranks (separate processes) take from it."""
        return self.folder / self.RESUME / "slurm_start.json"

    @property
    def attempts(self) -> Path:
        return self.folder / self.ATTEMPTS

    def attempt_files(self) -> list[Path]:
        """What a failed attempt leaves that a fresh start must not mix with its own."""
        names = (self.METRICS, self.CHECKPOINTS, self.CSV_LOGS, self.WANDB, self.REVIEW,
                 self.REPORT, self.MODEL_CARD)  # fmt: skip
        return [self.folder / name for name in names]

    # --------------------------------------------------------------- other jobs' files
    @property
    def lr_curve(self) -> Path:
        """``lr_find.csv``: the learning-rate finder's curve (``python -m fracture_lit.tune lr``)."""
        return self.folder / self.LR_CURVE

    @property
    def lr_plot(self) -> Path:
        return self.folder / self.LR_PLOT

    @property
    def tune_record(self) -> Path:
        """``tune.json``: what a finder suggests, with the override to use."""
        return self.folder / self.TUNE_RECORD

    @property
    def predict_csv(self) -> Path:
        """predict's ``predictions.csv`` (unless ``output=`` names another file)."""
        return self.folder / self.PREDICT_CSV

    @property
    def predict_gradcam(self) -> Path:
        return self.folder / self.PREDICT_GRADCAM

    @property
    def onnx_model(self) -> Path:
        """export's ``model.onnx`` (unless ``output=`` names another file)."""
        return self.folder / self.ONNX_MODEL

    @property
    def export_report(self) -> Path:
        """``export.json``: always beside the exported model (see :meth:`beside`)."""
        return self.folder / self.EXPORT_REPORT

    @property
    def leakage_json(self) -> Path:
        return self.folder / self.LEAKAGE_JSON

    @property
    def leakage_text(self) -> Path:
        return self.folder / self.LEAKAGE_TEXT

    @property
    def pipeline(self) -> Path:
        """``pipeline.json``: both stages, the filter and the end-to-end estimate."""
        return self.folder / self.PIPELINE

    def stage(self, name: str) -> RunLayout:
        """A pipeline stage's run folder (``stage1``, ``stage2``)."""
        return RunLayout(self.folder / name)

    @property
    def stage_scores(self) -> Path:
        """Every stage-2 image's stage-1 score and verdict."""
        return self.folder / self.STAGE_SCORES

    @property
    def stage_subset(self) -> Path:
        """The stage-2 images the detector passed (stage 2's ``data.subset_file``)."""
        return self.folder / self.STAGE_SUBSET

    # --------------------------------------------------------------- finding a run
    @classmethod
    def beside(cls, file: str | Path) -> RunLayout:
        """The layout of the folder holding ``file`` (export.json beside any model file)."""
        return cls(Path(file).parent)

    @classmethod
    def of_checkpoint(cls, ckpt_path: str | Path) -> RunLayout | None:
        """The run a checkpoint belongs to: ``<run>`` of ``<run>/checkpoints/<name>.ckpt``
        when ``<run>`` holds a job's record (metrics.json, config.yaml or .hydra/).

        None for a checkpoint copied elsewhere: its folder says nothing about how it was
        trained, and guessing the folder above would read another run's files.
        """
        ckpt = Path(ckpt_path).expanduser().resolve()
        if ckpt.parent.name != cls.CHECKPOINTS:
            return None
        run = cls(ckpt.parent.parent)
        return run if run.has_record() else None

    @classmethod
    def checkpoint_hint(cls, ckpt_path: str | Path) -> str:
        """Why :meth:`of_checkpoint` found no run, for an error message."""
        ckpt = Path(ckpt_path).expanduser().resolve()
        if ckpt.parent.name != cls.CHECKPOINTS:
            return f"it is not in a run's {cls.CHECKPOINTS}/ folder (<run>/{cls.CHECKPOINTS}/)"
        run = ckpt.parent.parent
        return f"its run folder {run} has no {cls.METRICS}, {cls.CONFIG} or {cls.HYDRA}/"


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
