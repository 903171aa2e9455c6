"""``<run>/review/``: the per-split files of the review and its Grad-CAM panels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
