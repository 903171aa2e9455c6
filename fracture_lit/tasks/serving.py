"""Serve a trained model as a web page: load it, describe it, answer uploads until stopped.

The page (:mod:`fracture_lit.serving`) names the model, its classes, its training data and
its test metrics (read from the checkpoint's run folder), and checks every upload against
the configured limits.
"""

from __future__ import annotations

from omegaconf import DictConfig

from fracture_lit.results.folders import load_job
from fracture_lit.serving.app import offline_environment, serve, upload_folder
from fracture_lit.serving.model_card import ModelCard, run_folder_of
from fracture_lit.serving.predictor import Predictor
from fracture_lit.serving.uploads import UploadLimits
from fracture_lit.validation import check_bool, check_int, validate_serve

__all__ = ["run"]


def run(cfg: DictConfig) -> None:
    """Load the checkpoint, describe it, and serve until interrupted."""
    validate_serve(cfg)
    check_int(cfg, "max_files", 1)
    check_bool(cfg, "gradcam.enabled")
    limits = UploadLimits(
        max_bytes=int(float(cfg.max_upload_mb) * 1024 * 1024),
        max_pixels=cfg.max_image_pixels,
        max_files=int(cfg.max_files),
    )
    offline_environment()
    predictor = Predictor.load(
        cfg.ckpt_path,
        limits,
        device=str(cfg.device),
        threshold=cfg.threshold,
        target_layer=cfg.gradcam.target_layer,
        gradcam=bool(cfg.gradcam.enabled),
        tta=str(cfg.tta),
    )
    runs = [
        (folder, load_job(folder) if folder else None)
        for folder in (run_folder_of(m.path) for m in predictor.members)
    ]
    card = ModelCard.build(predictor, runs)
    with upload_folder() as workdir:
        serve(predictor, card, workdir, host=str(cfg.host), port=int(cfg.port))
