"""Export a trained checkpoint: ``python -m fracture_lit.export ckpt_path=... [format=onnx]``.

Composes ``conf/export.yaml``, rebuilds the model with
:func:`~fracture_lit.models.loading.load_checkpoint` and writes an ONNX graph that takes the
normalised float batch ``images`` (N, in_chans, S, S), N dynamic, and returns ``probs``
(softmax) and ``logits``. Everything a deployment needs to preprocess and threshold without
the checkpoint goes into the model's ``metadata_props`` (JSON strings): class names,
decision threshold, image size, resize mode, normalisation mean/std, channels, backbone and
source checkpoint (read them with :func:`fracture_lit.tasks.onnx_model.read_metadata`).

An exported file nobody compared with PyTorch is a guess, so by default the export is run
with ONNX Runtime (CPU) and PyTorch on the same random batch, of another size than the one
traced, and fails when they differ by more than ``atol``. ``export.json`` beside the model
records the result. The work is :mod:`fracture_lit.tasks.exporting`.
"""

from __future__ import annotations

from omegaconf import DictConfig

from fracture_lit.tasks.entry import task_entry


@task_entry("export")
def main(cfg: DictConfig) -> None:
    # Imported once the command line is checked: the task loads torch and ONNX.
    from fracture_lit.tasks.exporting import run

    run(cfg)


if __name__ == "__main__":
    main()
