"""Try a trained model in the browser: ``python -m fracture_lit.serve ckpt_path=<ckpt>``.

A Gradio page on http://127.0.0.1:7860 (``host=``/``port=`` to change): upload JPEG, PNG
or DICOM files and see, for each, the class, the probability, the checkpoint's
validation-chosen threshold and a Grad-CAM heatmap; download the results as CSV. The page
names the model, its classes, its training data and its test metrics. See
:mod:`fracture_lit.serving` for the upload checks and what stays on disk (nothing).
The work is :mod:`fracture_lit.tasks.serving`.
"""

from __future__ import annotations

from omegaconf import DictConfig

from fracture_lit.tasks.entry import task_entry


@task_entry("serve")
def main(cfg: DictConfig) -> None:
    # Imported once the command line is checked: the task loads torch and Gradio.
    from fracture_lit.tasks.serving import run

    run(cfg)


if __name__ == "__main__":
    main()
