"""The names every localization table is made of, kept once (no torch, no cv2: the reports
read them to lay out ``metrics.json``'s ``localization`` blocks).
"""

from __future__ import annotations

__all__ = [
    "BASELINES",
    "GROUPS",
    "IMAGE_SCORES",
    "METHODS",
    "MODEL_METHOD",
    "SCORE_TITLES",
    "SUMMARY_SCORES",
    "THRESHOLD_SWEEP",
]

#: The per-image scores, in report order (:mod:`.scores` defines each).
IMAGE_SCORES: tuple[str, ...] = ("pointing", "energy", "iou", "box_hit")
#: What a table reports per method: the per-image scores' means, then MaxBoxAcc.
SUMMARY_SCORES: tuple[str, ...] = (*IMAGE_SCORES, "max_box_acc")
#: Heatmap thresholds (fractions of the maximum) swept for MaxBoxAcc.
THRESHOLD_SWEEP: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))
#: Image groups of every localization table: all, the model's hits, its misses.
GROUPS: tuple[str, ...] = ("all", "correct", "missed")
#: The model's heatmap method (the review's Grad-CAM).
MODEL_METHOD = "gradcam"
#: The baselines every localization table shows next to the model (report order).
BASELINES: tuple[str, ...] = ("random", "centre")
#: The heatmap methods of every table: the model's, then the baselines.
METHODS: tuple[str, ...] = (MODEL_METHOD, *BASELINES)
#: Column titles of the reports.
SCORE_TITLES: dict[str, str] = {
    "pointing": "pointing game",
    "energy": "energy inside",
    "iou": "IoU",
    "box_hit": "box hit",
    "max_box_acc": "MaxBoxAcc",
}
