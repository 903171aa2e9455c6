"""Pruned Optuna searches: the median pruner stops clearly worse trials, the study records
them PRUNED, the job folders ``pruned``, the report shows them; a killed search resumes
with the pruner's state; the report's search section and ``best_config.yaml``.

The search space makes some trials clearly worse by construction: a learning rate of 1.0
sends the validation loss to ~1e7 after one epoch, 0.003 keeps it near 0.7. The trials'
order is fixed by enqueueing them in the study before the search starts (Optuna hands
enqueued trials out first, in order): two good ones with different augmentation strengths
(the median pruner's two start-up trials, never pruned), then bad ones. With the monitor
``val/loss`` (minimised) and no warm-up, every bad trial is pruned at its first epoch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TINY, run_cli
from tests.resume_helpers import kill_after_checkpoint, metrics, run_to_end, train_command

GOOD, BAD = 0.003, 1.0
SEARCH = [
    "hparams_search=optuna",
    "model=small_cnn_128",
    *TINY,
    "trainer.max_epochs=2",
    "~callbacks.review",
    "model.n_bootstrap=20",
    "monitor=val/loss",
    "monitor_mode=min",
    "hydra.sweeper.direction=minimize",
    "hydra.sweeper.pruner=median",
    "hydra.sweeper.pruners.median.n_startup_trials=2",
    "hydra.sweeper.pruners.median.n_warmup_steps=0",
    f"model.optimizer.lr=choice({GOOD},{BAD})",
    "data.augment_strength=interval(0.0,1.0)",
]


def _study(sweep: Path):
    import optuna

    return optuna.load_study(study_name="optuna_search", storage=f"sqlite:///{sweep / 'optuna.db'}")


def _enqueue(sweep: Path, lrs: list[float]) -> None:
    """Create the search's study with these trials first in line (augmentation strengths
    0.1, 0.6, 0.3, ...: the completed trials differ, so their importance is computable)."""
    import optuna

    sweep.mkdir(parents=True)
    study = optuna.create_study(
        study_name="optuna_search",
        storage=f"sqlite:///{sweep / 'optuna.db'}",
        direction="minimize",
    )
    for i, lr in enumerate(lrs):
        strength = (0.1, 0.6, 0.3, 0.8, 0.5)[i]
        study.enqueue_trial({"model.optimizer.lr": lr, "data.augment_strength": strength})


@pytest.fixture(scope="module")
def pruned_search(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Path:
    """Three trials: 0.003 and 0.003 (complete), 1.0 (pruned at its first epoch)."""
    root = tmp_path_factory.mktemp("pruned")
    sweep = root / "search"
    _enqueue(sweep, [GOOD, GOOD, BAD])
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            "-m",
            *SEARCH,
            f"data.root={synthetic_root}",
            "hydra.sweeper.n_trials=3",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=root,
        env={"FRACTURE_LIT_ROOT": str(root)},
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return sweep


def test_clearly_worse_trials_are_pruned_and_recorded(pruned_search: Path) -> None:
    sweep = pruned_search
    trials = _study(sweep).trials
    assert [t.params["model.optimizer.lr"] for t in trials] == [GOOD, GOOD, BAD]
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    pruned = trials[2]
    assert list(pruned.intermediate_values) == [0]  # reported its first epoch, then stopped
    assert pruned.value == pruned.intermediate_values[0] > 1e3
    assert all(list(t.intermediate_values) == [0, 1] for t in trials[:2])

    record = metrics(sweep / "2")
    assert record["status"] == "pruned" and "traceback" not in record and "error" not in record
    assert record["epochs"] == 1
    assert record["pruned"]["epoch"] == 0 and record["pruned"]["pruner"] == "median"
    assert record["pruned"]["value"] == pytest.approx(pruned.value)
    assert "val" not in record  # stopped: its best checkpoint is not evaluated
    for kept in ("last.ckpt", "epoch_000.ckpt"):
        assert (sweep / "2" / "checkpoints" / kept).is_file()
    assert [metrics(sweep / n)["status"] for n in ("0", "1")] == ["done", "done"]

    report = (sweep / "results.md").read_text()
    assert "3 jobs: 2 done, 1 pruned, 0 failed." in report
    row = next(line for line in report.splitlines() if line.startswith("| 2 | "))  # Jobs
    assert "model.optimizer.lr=1.0" in row and "| pruned after 1 epoch | 1 |" in row
    assert ",pruned," in (sweep / "results.csv").read_text()


def test_report_shows_the_search_and_the_best_config_runs(
    pruned_search: Path, tmp_path: Path
) -> None:
    sweep = pruned_search
    html = (sweep / "report.html").read_text()
    search = html[html.index("<h2>Search</h2>") : html.index("<h2>Tables</h2>")]
    assert "3 trials (2 completed, 1 pruned)" in search
    for title in ("Hyperparameter importance", "Optimisation history", "Parallel coordinates"):
        heading = search.index(f"<h3>{title}</h3>")
        assert search[heading:].split("</h3>", 1)[1].lstrip().startswith("<figure")
    assert "fitted to the 2 completed trials" in search  # augment_strength varied between them
    assert 'class="badge pruned"' in html

    best = min(
        (t for t in _study(sweep).trials if t.state.name == "COMPLETE"), key=lambda t: t.value
    )
    config = (sweep / "best_config.yaml").read_text()
    assert f"# Best trial {best.number} of the Optuna search in {sweep}" in config
    assert "optuna_pruning" not in config and "task_name: optuna_search_best" in config
    run = tmp_path / "best"
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            "--config-dir",
            str(sweep),
            "--config-name",
            "best_config",
            "trainer.max_epochs=1",
            f"hydra.run.dir={run}",
        ],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    ran = metrics(run)
    assert ran["status"] == "done" and "val" in ran
    trained = (run / "config.yaml").read_text()
    assert f"lr: {best.params['model.optimizer.lr']}" in trained
    assert f"augment_strength: {best.params['data.augment_strength']}" in trained


def test_search_summary_in_wandb(pruned_search: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The summary run a search logs when its trials log to W&B (offline: no login)."""
    from fracture_lit.results.search_insight import load_insight
    from fracture_lit.results.search_wandb import log_search_summary
    from tests.wandb_records import read_offline_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    insight = load_insight(pruned_search)
    folder = log_search_summary(insight, {"project": "fracture_lit", "group": "g-search"})
    import wandb

    wandb.teardown()  # the service writes the run's file; as at the end of a process
    run = read_offline_run(folder)
    assert run.job_type == "search" and run.group == "g-search"
    for key in ("trials", "importance", "figure_importance", "figure_history", "figure_parallel"):
        assert f"search/{key}/_type" in run.history_keys, key  # tables and images
    assert json.loads(run.config["best_trial"]) == insight.best.number


@pytest.mark.ddp
def test_a_ddp_trial_is_pruned_on_every_rank(tmp_path: Path, synthetic_root: Path) -> None:
    """Trials trained with DDP (2 CPU processes, gloo) inside the search: rank 0 alone
    reports, both ranks stop at the pruned epoch, and the children run their one job
    (hparams_search=optuna asks for a multirun: they must not start the search again)."""
    sweep = tmp_path / "search"
    _enqueue(sweep, [GOOD, BAD])
    result = run_cli(
        [
            "-m",
            "fracture_lit.train",
            "-m",
            *SEARCH,
            f"data.root={synthetic_root}",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "hydra.sweeper.pruners.median.n_startup_trials=1",
            "hydra.sweeper.n_trials=2",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        env={"FRACTURE_LIT_ROOT": str(tmp_path)},
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert [t.state.name for t in _study(sweep).trials] == ["COMPLETE", "PRUNED"]
    record = metrics(sweep / "1")
    assert record["status"] == "pruned" and record["epochs"] == 1
    assert sorted(p.name for p in sweep.iterdir() if p.name.isdigit()) == ["0", "1"]
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun_outputs").exists()
    for job in ("0", "1"):
        rank1 = (sweep / job / "train_ddp_process_1.log").read_text()  # rank 1 ran, here
        assert "to the median pruner" not in rank1
        assert "to the median pruner" in (sweep / job / "train.log").read_text()


@pytest.mark.slow
def test_killed_pruned_search_resumes_with_the_pruner_state(
    tmp_path: Path, synthetic_root: Path
) -> None:
    """kill -9 during trial 1 (after its first epoch) of a four-trial pruned search;
    `fracture_lit.resume` continues trial 1 in its folder, then runs trials 2 and 3, which
    the pruner (its state: the study's intermediate values, partly written before the
    kill) prunes: every trial ran once, n_trials is honoured, trial 0 is untouched."""
    sweep = tmp_path / "search"
    _enqueue(sweep, [GOOD, GOOD, BAD, BAD])
    args = [
        *train_command(),
        "-m",
        *SEARCH,
        f"data.root={synthetic_root}",
        "hydra.sweeper.n_trials=4",
        f"hydra.sweep.dir={sweep}",
    ]
    kill_after_checkpoint(
        args, tmp_path, sweep / "1" / "checkpoints" / "last.ckpt", 0, tmp_path / "killed.log"
    )
    states = [t.state.name for t in _study(sweep).trials]
    assert states == ["COMPLETE", "RUNNING", "WAITING", "WAITING"], states
    kept = {  # what a rerun would rewrite (the sweep's report rewrites report.html anyway)
        p: p.stat().st_mtime_ns
        for p in [sweep / "0" / "metrics.json", *(sweep / "0").glob("checkpoints/*")]
    }

    run_to_end([*train_command()[:2], "fracture_lit.resume", str(sweep)], tmp_path, timeout=900)

    trials = _study(sweep).trials
    assert [t.params["model.optimizer.lr"] for t in trials] == [GOOD, GOOD, BAD, BAD]
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED", "PRUNED"]
    assert sorted(p.name for p in sweep.iterdir() if p.name.isdigit()) == list("0123")
    assert len(kept) >= 3 and {p: p.stat().st_mtime_ns for p in kept} == kept
    assert not list(sweep.glob("*/.attempts"))  # nothing started over
    assert "Resuming from" in (sweep / "1" / "train.log").read_text()
    assert list(trials[1].intermediate_values) == [0, 1]  # epoch 0 before the kill, 1 after
    statuses = [metrics(sweep / str(n))["status"] for n in range(4)]
    assert statuses == ["done", "done", "pruned", "pruned"]
    assert "4 jobs: 2 done, 2 pruned, 0 failed." in (sweep / "results.md").read_text()


def test_pruner_settings_are_checked_before_the_search_starts() -> None:
    from fracture_lit.errors import ConfigError
    from fracture_lit.utils.search_study import make_pruner, pruner_settings

    with pytest.raises(ConfigError, match="hydra.sweeper.pruner.*median, asha, none"):
        pruner_settings("hyperband", {})
    with pytest.raises(ConfigError, match="hydra.sweeper.pruners.asha.reduction_factor"):
        pruner_settings("asha", {"asha": {"reduction_factor": -3}})
    asha = make_pruner(
        pruner_settings("asha", {"asha": {"min_resource": 1, "reduction_factor": 3}})
    )
    assert type(asha).__name__ == "SuccessiveHalvingPruner"
    assert type(make_pruner(pruner_settings("none", {}))).__name__ == "NopPruner"
