"""Exact resume: real training processes killed (SIGKILL) or preempted (SIGTERM/SIGUSR1)
after a checkpoint, started again in the same folder, end as if never interrupted."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from tests.resume_helpers import (
    RESUMABLE,
    assert_same_results,
    checkpoint_epoch,
    kill_after_checkpoint,
    metrics,
    run_to_end,
    start,
    train_command,
    wait_for,
)


def _args(synthetic_root: Path, run: Path, *extra: str) -> list[str]:
    return train_command(*RESUMABLE, f"data.root={synthetic_root}", f"hydra.run.dir={run}", *extra)


def test_killed_run_resumes_to_the_same_metrics(tmp_path: Path, synthetic_root: Path) -> None:
    """kill -9 after the epoch-1 checkpoint; the same command resumes it (resume=auto)."""
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    run_to_end(_args(synthetic_root, reference), tmp_path)
    epoch = kill_after_checkpoint(
        _args(synthetic_root, killed),
        tmp_path,
        killed / "checkpoints" / "last.ckpt",
        epoch=1,
        log=tmp_path / "killed.log",
    )
    assert not (killed / "metrics.json").exists()
    assert epoch < 3  # killed mid-run, not after the last epoch

    result = run_to_end(_args(synthetic_root, killed), tmp_path)
    assert "Resuming from" in (killed / "train.log").read_text() + result.stderr

    # Same metrics, best checkpoint and csv/metrics.csv (the epochs before the kill kept).
    assert_same_results(reference, killed)
    names = sorted(p.name for p in (killed / "checkpoints").iterdir())
    assert "last.ckpt" in names and not [n for n in names if n.startswith("last-")]
    assert not list((killed / "checkpoints").glob("*.tmp"))
    assert checkpoint_epoch(killed / "checkpoints" / "last.ckpt") == 3


def test_ctrl_c_run_resumes_to_the_same_metrics(tmp_path: Path, synthetic_root: Path) -> None:
    """Ctrl-C (SIGINT) mid-run: Lightning shuts down and exits 1, the record says
    interrupted (not failed), and the same command continues from last.ckpt."""
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    run_to_end(_args(synthetic_root, reference), tmp_path)
    log = tmp_path / "stopped.log"
    process = start(_args(synthetic_root, stopped), tmp_path, log)
    last = stopped / "checkpoints" / "last.ckpt"
    wait_for(process, lambda: (checkpoint_epoch(last) or -1) >= 1, what="the epoch-1 checkpoint")
    os.kill(process.pid, signal.SIGINT)
    assert process.wait(timeout=300) != 0
    assert metrics(stopped)["status"] == "interrupted", log.read_text()[-3000:]

    run_to_end(_args(synthetic_root, stopped), tmp_path)
    assert not (stopped / ".attempts").exists()  # continued, not started again
    assert_same_results(reference, stopped)


def test_done_run_is_not_rerun(tmp_path: Path, synthetic_root: Path) -> None:
    run = tmp_path / "run"
    args = _args(synthetic_root, run, "trainer.max_epochs=1", "test=false")
    run_to_end(args, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    record = metrics(run)
    result = run_to_end(args, tmp_path)
    assert "is done (metrics.json): kept as it is, not rerun" in result.stderr + result.stdout
    assert metrics(run) == record
    for path in (
        run / "metrics.json",
        run / "checkpoints" / "last.ckpt",
        run / "csv" / "metrics.csv",
    ):
        assert path.stat().st_mtime_ns == before[path]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_preempted_mid_epoch_resumes_to_the_same_metrics(
    tmp_path: Path, synthetic_root: Path, signum: int
) -> None:
    """The preemption signal mid-epoch writes last.ckpt after the current batch and exits
    128 + signal; started again it continues that epoch, with two DataLoader workers
    and weighted sampling (their state resumes too)."""
    extra = ("data.num_workers=2", "data.balance=sampler")
    reference, preempted = tmp_path / "reference", tmp_path / "preempted"
    run_to_end(_args(synthetic_root, reference, *extra), tmp_path)

    log = tmp_path / "preempted.log"
    extra_preempted = (*extra, "logger=wandb")  # offline: the resumed run keeps its id
    process = start(_args(synthetic_root, preempted, *extra_preempted), tmp_path, log)
    last = preempted / "checkpoints" / "last.ckpt"
    wait_for(process, lambda: checkpoint_epoch(last) == 0, what="the epoch-0 checkpoint")
    os.kill(process.pid, signum)
    assert process.wait(timeout=300) == 128 + signum, log.read_text()[-3000:]
    record = metrics(preempted)
    assert record["status"] == "preempted" and record["resume_from"] == str(last)
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    position = checkpoint["SyntheticDataModule"]["sampling"]
    [own] = checkpoint["callbacks"]["ResumableTraining"]["ranks"]
    assert "rng" in own or position["batches_done"] == 0

    run_to_end(_args(synthetic_root, preempted, *extra_preempted), tmp_path)
    assert_same_results(reference, preempted)
    runs = sorted((preempted / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and len({run.name.rsplit("-", 1)[1] for run in runs}) == 1, runs


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_run_preempted_mid_epoch_resumes_to_the_same_metrics(
    tmp_path: Path, synthetic_root: Path
) -> None:
    """SIGTERM to a 2-process DDP run (gloo) mid-epoch: both ranks stop after the same
    batch, last.ckpt holds each rank's generators and epoch metrics, and the restarted run
    ends with the uninterrupted DDP run's metrics."""
    ddp = ("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=3")
    reference, preempted = tmp_path / "reference", tmp_path / "preempted"
    run_to_end(_args(synthetic_root, reference, *ddp), tmp_path)

    log = tmp_path / "preempted.log"
    process = start(_args(synthetic_root, preempted, *ddp), tmp_path, log)
    last = preempted / "checkpoints" / "last.ckpt"
    wait_for(process, lambda: checkpoint_epoch(last) == 0, what="the epoch-0 checkpoint")
    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(timeout=300) == 128 + signal.SIGTERM, log.read_text()[-3000:]
    assert metrics(preempted)["status"] == "preempted"
    ranks = torch.load(last, map_location="cpu", weights_only=True)["callbacks"][
        "ResumableTraining"
    ]["ranks"]
    assert len(ranks) == 2

    run_to_end(_args(synthetic_root, preempted, *ddp), tmp_path)
    assert_same_results(reference, preempted)


# --------------------------------------------------------------------------- sweeps
def _sweep_args(synthetic_root: Path, sweep: Path, *extra: str) -> list[str]:
    return [
        *train_command(),
        "-m",
        *RESUMABLE,
        f"data.root={synthetic_root}",
        "seed=1,2,3",
        f"hydra.sweep.dir={sweep}",
        *extra,
    ]


@pytest.mark.slow
def test_killed_sweep_resumes_with_fracture_lit_resume(
    tmp_path: Path, synthetic_root: Path
) -> None:
    """kill -9 of the launching process during job 2 of 3; `fracture_lit.resume` keeps job
    1 untouched, continues job 2 from its checkpoint, runs job 3; metrics equal an
    uninterrupted sweep's, and the report covers every job once."""
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    run_to_end(_sweep_args(synthetic_root, reference), tmp_path, timeout=900)
    epoch = kill_after_checkpoint(
        _sweep_args(synthetic_root, killed),
        tmp_path,
        killed / "1" / "checkpoints" / "last.ckpt",
        epoch=1,
        log=tmp_path / "killed.log",
    )
    assert epoch < 3
    assert metrics(killed / "0")["status"] == "done"
    assert not (killed / "1" / "metrics.json").exists() and not (killed / "2").exists()
    job0 = {p: p.stat().st_mtime_ns for p in (killed / "0").rglob("*") if p.is_file()}

    result = run_to_end(
        [*train_command()[:2], "fracture_lit.resume", str(killed)], tmp_path, timeout=900
    )
    assert f"hydra.sweep.dir={killed}" in result.stdout

    for path in ("metrics.json", "checkpoints/last.ckpt", "csv/metrics.csv"):
        assert (killed / "0" / path).stat().st_mtime_ns == job0[killed / "0" / path]
    assert "Resuming from" in (killed / "1" / "train.log").read_text()
    for job in ("0", "1", "2"):
        assert_same_results(reference / job, killed / job)
    rows = (killed / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3


def test_a_folder_of_another_job_is_refused(tmp_path: Path) -> None:
    from fracture_lit.errors import UserError
    from fracture_lit.utils.job_folder import check_same_job

    job = tmp_path / "1"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- seed=2\n")
    check_same_job(job, ["seed=2", "model=resnet18"])
    (job / "metrics.json").write_text('{"status": "done"}')
    check_same_job(job, ["model=resnet18", "seed=2"])  # same job, other order
    (job / ".hydra" / "overrides.yaml").write_text("- seed=3\n")  # Hydra rewrote it
    with pytest.raises(UserError, match="belongs to the job `seed=2 model=resnet18`"):
        check_same_job(job, ["seed=3", "model=resnet18"])
    assert (job / ".hydra" / "overrides.yaml").read_text() == "- seed=2\n"
    assert (job / "metrics.json").read_text() == '{"status": "done"}'


def test_resume_policy_of_a_job_folder(tmp_path: Path) -> None:
    from fracture_lit.utils.job_folder import plan_job

    job = tmp_path / "job"
    (job / ".hydra").mkdir(parents=True)
    assert plan_job(job).action == "fresh" and not (job / ".attempts").exists()
    (job / "checkpoints").mkdir()
    (job / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert plan_job(job) == plan_job(job, "auto")
    assert plan_job(job).checkpoint == str(job / "checkpoints" / "last.ckpt")
    for stopped in ("preempted", "interrupted"):  # stopped from outside, not failed
        (job / "metrics.json").write_text(json.dumps({"status": stopped}))
        assert plan_job(job).action == "resume"
    (job / "metrics.json").write_text('{"status": "done", "val": {}}')
    assert plan_job(job).action == "skip" and plan_job(job).recorded["status"] == "done"
    (job / "metrics.json").write_text('{"status": "failed"}')
    assert plan_job(job).action == "fresh"
    moved = job / ".attempts" / "1"
    assert (moved / "metrics.json").is_file() and (moved / "checkpoints" / "last.ckpt").is_file()
    assert not (job / "checkpoints").exists()


def test_resume_command_reruns_the_recorded_sweep(tmp_path: Path) -> None:
    import json

    from fracture_lit.errors import UserError
    from fracture_lit.utils.sweep_resume import RECORD, resume_command

    with pytest.raises(UserError, match="not a sweep folder"):
        resume_command(tmp_path)
    (tmp_path / RECORD).parent.mkdir()
    (tmp_path / RECORD).write_text(
        json.dumps(
            {
                "task": ["seed=1,2,3", "model=resnet18"],
                "hydra": ["hydra.mode=MULTIRUN", "hydra/launcher=slurm", "hydra.sweep.dir=x"],
            }
        )
    )
    command = resume_command(tmp_path, ["hydra.launcher.partition=gpu"])
    assert command[1:] == [
        "-m",
        "fracture_lit.train",
        "-m",
        "hydra/launcher=slurm",
        "seed=1,2,3",
        "model=resnet18",
        f"hydra.sweep.dir={tmp_path.resolve()}",
        "hydra.launcher.partition=gpu",
    ]


def test_killed_optuna_search_continues_its_study(tmp_path: Path, synthetic_root: Path) -> None:
    """kill -9 of an Optuna search during trial 1 of 3: `fracture_lit.resume` finishes trial
    1 from its checkpoint in its own folder (ending as an uninterrupted run with its
    parameters), keeps trial 0 untouched, runs trial 2, and the study holds all three."""
    optuna = pytest.importorskip("optuna")
    sweep = tmp_path / "search"
    args = _sweep_args(
        synthetic_root,
        sweep,
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.n_startup_trials=3",
    )
    args.remove("seed=1,2,3")
    kill_after_checkpoint(
        args, tmp_path, sweep / "1" / "checkpoints" / "last.ckpt", 1, tmp_path / "killed.log"
    )
    storage = f"sqlite:///{sweep / 'optuna.db'}"
    study = optuna.load_study(study_name="optuna_search", storage=storage)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "RUNNING"], states
    kept = [sweep / "0" / name for name in ("metrics.json", "checkpoints/last.ckpt", "csv")]
    job0 = {p: p.stat().st_mtime_ns for p in kept}

    run_to_end([*train_command()[:2], "fracture_lit.resume", str(sweep)], tmp_path, timeout=900)

    study = optuna.load_study(study_name="optuna_search", storage=storage)
    assert [(t.number, t.state.name) for t in study.trials] == [
        (0, "COMPLETE"),
        (1, "COMPLETE"),
        (2, "COMPLETE"),
    ]
    assert sorted(p.name for p in sweep.iterdir() if p.name.isdigit()) == ["0", "1", "2"]
    assert {p: p.stat().st_mtime_ns for p in kept} == job0  # trial 0 was not retrained
    assert "Resuming from" in (sweep / "1" / "train.log").read_text()
    for trial in study.trials:
        job = sweep / str(trial.number)
        assert trial.value == pytest.approx(metrics(job)["val"]["metrics"]["val/auroc"])
        recorded = (job / ".resume" / "overrides.json").read_text()
        for name, value in trial.params.items():
            assert f"{name}={value}" in recorded, (name, value, recorded)

    # Trial 1, continued after the kill, equals an uninterrupted run with its overrides.
    recorded = json.loads((sweep / "1" / ".resume" / "overrides.json").read_text())["overrides"]
    overrides = [o for o in recorded if not o.startswith("hparams_search=")]  # one run
    reference = tmp_path / "reference"
    run_to_end(train_command(*overrides, f"hydra.run.dir={reference}"), tmp_path)
    assert_same_results(reference, sweep / "1")
    assert "n_trials: 3" in (sweep / "optimization_results.yaml").read_text()


class _Unpicklable:
    def __reduce__(self):  # noqa: ANN204
        raise RuntimeError("cannot be saved")


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_checkpoint_writes_are_atomic(tmp_path: Path, as_url: bool) -> None:
    """A save that fails half-way leaves the previous checkpoint as it was and no partial
    file under the real name; a good save replaces it and loads with weights_only=True."""
    from fracture_lit.callbacks.resume import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    target = tmp_path / "checkpoints" / "last.ckpt"
    path = f"file://{target}" if as_url else str(target)
    io.save_checkpoint({"epoch": 1, "w": torch.arange(4.0)}, path)
    assert torch.load(target, weights_only=True)["epoch"] == 1

    with pytest.raises(RuntimeError, match="cannot be saved"):
        io.save_checkpoint({"epoch": 2, "bad": _Unpicklable()}, path)
    assert torch.load(target, weights_only=True)["epoch"] == 1
    assert not target.with_name("last.ckpt.tmp").exists()  # no partial file holds space

    io.save_checkpoint({"epoch": 3, "w": torch.ones(2)}, path)
    loaded = torch.load(target, weights_only=True)
    assert loaded["epoch"] == 3 and torch.equal(loaded["w"], torch.ones(2))
    assert not target.with_name("last.ckpt.tmp").exists()
