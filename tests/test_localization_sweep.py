"""Acceptance: a sweep over two backbones on the FracAtlas sample answers "which backbone
looks at the fracture" like "which is most accurate": a localization column and its paired
comparison with the best job in results.md, results.csv and the HTML sweep page, the
difference agreeing with the per-image scores the jobs saved."""

from __future__ import annotations

import csv
import html
import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import QUICK_TRAINER, run_cli
from tests.localization_data import fracatlas_with_regions

BACKBONES = ("resnet18", "mobilenetv2_100")


@pytest.fixture(scope="module")
def sweep(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = fracatlas_with_regions(shared_data)
    tmp = tmp_path_factory.mktemp("localization_sweep")
    sweep_dir = tmp / "sweep"
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            "-m",
            f"model={','.join(BACKBONES)}",
            "model.pretrained=false",
            "data=fracatlas",
            f"data.root={root}",
            f"data.cache_dir={tmp / 'cache'}",
            "data.image_size=64",
            "data.batch_size=32",
            *QUICK_TRAINER,
            "trainer.max_epochs=2",
            "+trainer.limit_train_batches=4",
            "callbacks.review.gradcam=false",
            "localization.n_bootstrap=200",
            "localization.n_panels=1",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp,
        env={"FRACTURE_LIT_ROOT": str(tmp), "OMP_NUM_THREADS": "1"},
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return sweep_dir


def _pointing(job: Path) -> dict[str, float]:
    """A job's saved per-image pointing hits, read with numpy alone."""
    with np.load(job / "review" / "test" / "localization.npz") as data:
        meta = json.loads(str(data["meta"]))
        column = meta["score_columns"].index("pointing")
        return {
            Path(str(i)).name: float(v)
            for i, v in zip(data["ids"], data["scores_gradcam"][:, column], strict=True)
        }


@pytest.mark.slow
def test_the_sweep_reports_localization_and_its_paired_comparison(sweep: Path) -> None:
    jobs = {
        json.loads((p / "metrics.json").read_text())["backbone"]: p for p in sweep.glob("[0-9]")
    }
    assert set(jobs) == set(BACKBONES)
    val = {
        b: json.loads((p / "metrics.json").read_text())["localization"]["val"]["groups"]["all"]
        for b, p in jobs.items()
    }
    best = max(BACKBONES, key=lambda b: val[b]["gradcam"]["pointing"]["value"])
    [other] = set(BACKBONES) - {best}
    hits, best_hits = _pointing(jobs[other]), _pointing(jobs[best])
    assert sorted(hits) == sorted(best_hits)  # the same test images
    delta = np.mean([hits[i] - best_hits[i] for i in hits])

    md = (sweep / "results.md").read_text()
    assert "localization (pointing game)" in md and "localization vs best" in md
    assert f"{best} has the best validation pointing game" in md
    with (sweep / "results.csv").open() as stream:
        rows = {r["backbone"]: r for r in csv.DictReader(stream)}
    assert rows[best]["test_localization_vs_best"].startswith("best (val pointing ")
    cell = rows[other]["test_localization_vs_best"]
    found = re.match(r"Δpointing ([+-]\d\.\d{3}) \[([+-]\d\.\d{3}), ([+-]\d\.\d{3})\] p=", cell)
    assert found, cell
    assert float(found[1]) == pytest.approx(delta, abs=5e-4)
    assert float(found[2]) <= float(found[1]) <= float(found[3])
    for backbone in BACKBONES:
        assert rows[backbone]["test_localization"].endswith(f"(n={len(hits)})")
    page = (sweep / "report.html").read_text()
    assert "localization vs best" in page and html.escape(cell) in page
    assert page.count("Localization, test (95% bootstrap CI)") == 2  # each job's section
