"""Try a trained model in the browser: ``python -m fracture_lit.serve ckpt_path=<ckpt>``.

A Gradio page on http://127.0.0.1:7860 (``host=``/``port=`` to change): upload JPEG, PNG
or DICOM files and see, for each, the class, the probability, the checkpoint's
validation-chosen threshold and a Grad-CAM heatmap; download the results as CSV. The page
names the model, its classes, its training data and its test metrics. See
:mod:`fracture_lit.serving` for the upload checks and what stays on disk (nothing).
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from fracture_lit.config import CONFIG_DIR, register_resolvers
from fracture_lit.errors import check_command_line, clean_exit

log = logging.getLogger("fracture_lit.serve")
register_resolvers()


def run(cfg: DictConfig) -> None:
    """Load the checkpoint, describe it, and serve until interrupted."""
    from fracture_lit.results.folders import load_job
    from fracture_lit.serving.app import offline_environment, serve, upload_folder
    from fracture_lit.serving.model_card import ModelCard, run_folder_of
    from fracture_lit.serving.predictor import Predictor
    from fracture_lit.serving.uploads import UploadLimits
    from fracture_lit.validation import check_bool, check_int, validate_serve

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
        (run, load_job(run) if run else None)
        for run in (run_folder_of(m.path) for m in predictor.members)
    ]
    card = ModelCard.build(predictor, runs)
    with upload_folder() as workdir:
        serve(predictor, card, workdir, host=str(cfg.host), port=int(cfg.port))


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="serve")
def main(cfg: DictConfig) -> None:
    with clean_exit():
        run(cfg)


if __name__ == "__main__":
    check_command_line("serve")
    main()
