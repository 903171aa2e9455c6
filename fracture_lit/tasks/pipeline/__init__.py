"""Paper C's two-stage pipeline (``python -m fracture_lit.pipeline``), one module per step.

:mod:`.stages` composes and runs each stage as an ordinary training run, :mod:`.detector`
scores the stage-2 images with the stage-1 detector, :mod:`.stage2_filter` decides who
passes, :mod:`.summary` makes the table and ``pipeline.json``, :mod:`.runner` chains them.
"""

from fracture_lit.tasks.pipeline.runner import run, run_pipeline
from fracture_lit.tasks.pipeline.stage2_filter import check_enough_passed, pass_counts, write_scores
from fracture_lit.tasks.pipeline.stages import PipelineError

__all__ = ["PipelineError", "check_enough_passed", "pass_counts", "run", "run_pipeline",
           "write_scores"]  # fmt: skip
