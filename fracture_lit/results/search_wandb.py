"""An Optuna search's summary as one W&B run beside its trials' runs.

Each trial's own W&B run already carries its full config (W&B's own parallel-coordinates
and importance panels read those); this adds one run per search, ``job_type=search``, in
the trials' group, holding what only the study knows: the importance (mean decrease in impurity), the
optimisation history and parallel-coordinates charts as images, a table of every trial
(pruned ones with their last reported value) and the best trial as the run's config and
summary. Offline without a login (``configure_wandb_mode``): never prompts, never fails
for credentials; ``wandb sync <folder>`` uploads it later. Its id is derived from the
sweep folder, so a resumed search updates the same run.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path
from typing import Any

from fracture_lit.results.search_charts import history_chart, importance_chart, parallel_chart
from fracture_lit.results.search_insight import SearchInsight
from fracture_lit.utils.environment import configure_wandb_mode

__all__ = ["log_search_summary", "summary_run_id"]

log = logging.getLogger(__name__)


def summary_run_id(sweep_dir: Path | str) -> str:
    """The summary run's id: stable for a sweep folder, so a resumed search reuses it."""
    digest = hashlib.sha1(str(Path(sweep_dir).resolve()).encode()).hexdigest()[:12]
    return f"search-{digest}"


def _image(data: bytes | None, caption: str) -> Any:
    import wandb
    from PIL import Image

    return None if data is None else wandb.Image(Image.open(io.BytesIO(data)), caption=caption)


def log_search_summary(insight: SearchInsight, wandb_settings: dict[str, Any]) -> Path | None:
    """Log the search into a W&B run made with ``wandb_settings`` (project, entity, group
    of the trials' logger); returns the run's local folder."""
    import wandb  # about 2 s; only a search that logs to W&B pays it

    configure_wandb_mode()
    best = insight.best
    names = insight.param_names
    run = wandb.init(
        project=wandb_settings.get("project"),
        entity=wandb_settings.get("entity"),
        group=wandb_settings.get("group"),
        job_type="search",
        name=f"{insight.study_name} (search summary)",
        id=summary_run_id(insight.sweep_dir),
        resume="allow",
        dir=str(insight.sweep_dir),
        config={
            "study_name": insight.study_name,
            "direction": insight.direction,
            "monitor": insight.monitor,
            "pruner": insight.pruner,
            "best_trial": None if best is None else best.number,
            "best_params": {} if best is None else best.params,
        },
        reinit=True,
    )
    try:
        trials = wandb.Table(
            columns=["trial", "state", insight.monitor, "epochs reported", *names],
            data=[
                [t.number, t.state.lower(), t.value, t.epochs, *(t.params.get(n) for n in names)]
                for t in insight.trials
            ],
        )
        payload: dict[str, Any] = {"search/trials": trials}
        if insight.importance:
            payload["search/importance"] = wandb.Table(
                columns=["parameter", "importance"],
                data=[list(i) for i in insight.importance.items()],
            )
        for key, chart, caption in (
            ("search/figure_importance", importance_chart(insight), insight.importance_note),
            ("search/figure_history", history_chart(insight), "optimisation history"),
            ("search/figure_parallel", parallel_chart(insight), "parallel coordinates"),
        ):
            image = _image(chart, caption)
            if image is not None:
                payload[key] = image
        run.log(payload)
        run.summary.update(
            {
                "trials": len(insight.trials),
                "completed": insight.count("COMPLETE"),
                "pruned": insight.count("PRUNED"),
                "failed": insight.count("FAIL"),
                **({} if best is None else {f"best/{insight.monitor}": best.value}),
                **{f"importance/{k}": v for k, v in insight.importance.items()},
            }
        )
        folder = Path(run.dir).parent
    finally:
        run.finish()
    log.info("W&B search summary: %s", folder)
    return folder
