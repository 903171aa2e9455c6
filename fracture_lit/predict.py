"""Predict new images: ``python -m fracture_lit.predict ckpt_path=... input=<file or folder>``.

Reads JPEG/PNG/BMP/TIFF and DICOM (windowing and MONOCHROME1 handled, see
:mod:`fracture_lit.data.readers`), feeds them exactly as the checkpoint was trained
(:class:`~fracture_lit.inference.InputPipeline`) and writes ``predictions.csv``: path,
probability of the positive class, the label at the checkpoint's validation-chosen
threshold, every class's probability. A file that cannot be read gets a row with
``status=error`` and the reason; the others are still predicted. ``gradcam.enabled=true``
adds a heatmap panel per image.
The work is :mod:`fracture_lit.tasks.predicting`.
"""

from __future__ import annotations

from omegaconf import DictConfig

from fracture_lit.tasks.entry import task_entry


@task_entry("predict", also=(FileNotFoundError,))
def main(cfg: DictConfig) -> None:
    # Imported once the command line is checked: the task loads torch.
    from fracture_lit.tasks.predicting import predict

    predict(cfg)


if __name__ == "__main__":
    main()
