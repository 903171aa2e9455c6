"""A run folder: a training run, a sweep job or an evaluation, and what it holds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fracture_lit.layout.review import ReviewLayout


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
    #: Each source's classes -> the shared ones (a merged dataset).
    LABEL_MAPPING = "label_mapping.json"
    #: ``scored/<stage>.csv``: the images a metrics.json block scored (internal test,
    #: external), one row each, for reports that recompute from predictions.
    SCORED = "scored"
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
                 self.REPORT, self.SCORED, self.MODEL_CARD)  # fmt: skip
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
    def label_mapping(self) -> Path:
        return self.folder / self.LABEL_MAPPING

    def scored(self, stage: str) -> Path:
        """``scored/<stage>.csv``: path, source, label, probabilities of a block's images."""
        return self.folder / self.SCORED / f"{stage}.csv"

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
