"""The README's "Add your own dataset", followed literally: its two files, its command.

The module and the YAML are taken from the README's code blocks and written where the
section says (the launch folder and ``my_conf/data/``); the command is the README's, with
a root of a few tiny images and the tests' one-epoch trainer settings.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
from pathlib import Path

import cv2
import numpy as np

from fracture_lit.results.run_folder import load_run
from tests.conftest import QUICK_TRAINER, REPO_ROOT, run_cli

SECTION = "### Add your own dataset"
SITES = ("north", "south")


def _section() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start)
    return text[start:end]


def _blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def _write_images(root: Path, per_class: int = 8) -> None:
    """``<root>/<site>/{intact,fractured}/*.png``: a bright bar, broken in the fractured."""
    rng = np.random.default_rng(0)
    for site in SITES:
        for name in ("intact", "fractured"):
            folder = root / site / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                image = rng.integers(0, 40, (48, 48), dtype=np.uint8)
                image[8:40, 20:28] = 200
                if name == "fractured":
                    image[22:26, 20:28] = 30
                assert cv2.imwrite(str(folder / f"{site}_{i}.png"), image)


def test_readme_dataset_trains_and_is_scored_per_site(tmp_path: Path) -> None:
    section = _section()
    (module,) = _blocks(section, "python")
    (yaml,) = _blocks(section, "yaml")
    (command,) = _blocks(section, "bash")
    assert "`my_xrays.py`" in section and "`my_conf/data/my_xrays.yaml`" in section
    (tmp_path / "my_xrays.py").write_text(module)
    (tmp_path / "my_conf" / "data").mkdir(parents=True)
    (tmp_path / "my_conf" / "data" / "my_xrays.yaml").write_text(yaml)
    images = tmp_path / "xrays"
    _write_images(images)

    args = shlex.split(command.strip())
    assert args[:3] == ["python", "-m", "fracture_lit.train"]
    args = [f"data.root={images}" if a.startswith("data.root=") else a for a in args[1:]]
    tiny = ["data.image_size=32", "data.batch_size=8", "data.val_fraction=0.25"]
    tiny += ["data.test_fraction=0.25", "data.cache_dir=" + str(tmp_path / "cache")]
    result = run_cli(
        [*args, *tiny, *QUICK_TRAINER, "model.n_bootstrap=20"],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]

    (metrics,) = (tmp_path / "outputs").glob("*/*/metrics.json")
    run = metrics.parent
    assert json.loads(metrics.read_text())["status"] == "done"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    scored = load_run(run).subgroups
    assert scored, "no per-subgroup scores in the run"
    for split, attributes in scored.items():
        assert set(attributes) == {"site"}, (split, attributes)
        assert set(attributes["site"]) <= set(SITES)
    with (run / "split_manifest.csv").open(newline="") as handle:
        n_test = sum(row["split"] == "test" for row in csv.DictReader(handle))
    assert sum(block["n"] for block in scored["test"]["site"].values()) == n_test > 0
