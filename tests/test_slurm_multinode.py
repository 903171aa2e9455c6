"""Multi-node DDP on the real two-node SLURM cluster of `make slurm` (two slurmd on this
machine): `hydra/launcher=slurm_cpu trainer.num_nodes=2` trains through srun with
Lightning's SLURM environment (gloo) to the metrics of two processes on one node; the
pre-flight check refuses an allocation that does not fit the trainer; a two-node job
preempted mid-epoch is requeued and resumes to the uninterrupted metrics.

Skipped with the reason when no cluster (or only one node) answers.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY, run_cli
from tests.slurm_cluster import (
    cancel,
    job_nodes,
    only_sweep,
    requeue_after_first_checkpoint,
    require_cluster,
    submission,
    submit_detached,
    usable_nodes,
    wait_for_record,
    wait_until,
)

pytestmark = pytest.mark.slurm

#: One process on each of two nodes, and the same DDP run as two processes on one node.
TWO_NODES = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.num_nodes=2"]
ONE_NODE = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]


@pytest.fixture(scope="module")
def two_nodes() -> None:
    require_cluster()
    if usable_nodes() < 2:
        pytest.skip("the SLURM cluster has fewer than 2 usable nodes (run `make slurm`)")


def _env(tmp_path: Path) -> dict[str, str]:
    """The jobs inherit the submitting environment (sbatch --export=ALL). One thread per
    rank, as on a one-core node: Lightning otherwise gives each rank cpu_count / devices
    threads (1 for two local processes, 2 for one process a node here), and a different
    thread count sums in a different order (probabilities then differ by ~1e-5)."""
    return {"FRACTURE_LIT_ROOT": str(tmp_path), "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def _leaves(value: object, path: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in _leaves(item, f"{path}/{key}").items()
        }
    if isinstance(value, list):
        return {
            k: v for i, item in enumerate(value) for k, v in _leaves(item, f"{path}/{i}").items()
        }
    return {path: value}


def _assert_same_scores(one: dict, other: dict) -> None:
    """Val and test blocks equal: counts exactly, floats to float tolerance."""
    for split in ("val", "test"):
        a, b = _leaves(one[split]), _leaves(other[split])
        assert a.keys() == b.keys(), split
        for key, value in a.items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, rel=1e-5, abs=1e-6), f"{split}{key}"
            else:
                assert b[key] == value, f"{split}{key}"


def _sweep(tmp_path: Path, data_root: Path, *overrides: str) -> list[str]:
    return [
        "-m",
        "fracture_lit.train",
        "-m",
        f"data.root={data_root}",
        *TINY,
        "hydra/launcher=slurm_cpu",
        *TWO_NODES,
        *overrides,
    ]


def test_two_nodes_train_like_two_processes_on_one(two_nodes, tmp_path, synthetic_root) -> None:
    """The same job as two processes on one node (local DDP) and as one process on each of
    two SLURM nodes (srun, Lightning's SLURM environment): the same scores. The two run
    at the same time (the SLURM job waits in the queue, then trains, while the local one
    trains)."""
    submit_log = tmp_path / "submit.log"
    with submit_log.open("w") as log:
        submitting = subprocess.Popen(
            [sys.executable, *_sweep(tmp_path, synthetic_root)],
            cwd=tmp_path,
            env={**os.environ, **_env(tmp_path)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    one_node = tmp_path / "one_node"
    try:
        reference = run_cli(
            ["-m", "fracture_lit.train", f"data.root={synthetic_root}", *TINY, *ONE_NODE]
            + [f"hydra.run.dir={one_node}"],
            cwd=tmp_path,
            env=_env(tmp_path),
            timeout=900,
        )
        returncode = submitting.wait(timeout=900)
    finally:
        if submitting.poll() is None:
            submitting.kill()
    assert reference.returncode == 0, reference.stderr[-4000:]
    sweep = only_sweep(tmp_path)
    job_id = submission(sweep)["0"]["slurm_job_id"]
    if returncode != 0:
        cancel([job_id])
    assert returncode == 0, submit_log.read_text()[-4000:]
    job = sweep / "0"
    summary = _metrics(job)
    assert summary["status"] == "done", summary.get("error")
    _assert_same_scores(_metrics(one_node), summary)
    # The scheduler's own record: one job, completed, on both nodes.
    assert wait_for_record([job_id]) == {job_id: "COMPLETED"}
    assert sorted(job_nodes(job_id)) == ["fracturelit1", "fracturelit2"]
    # Lightning joined SLURM's two tasks (one per node) into one gloo world.
    rank0 = (job / "train.log").read_text()
    rank1 = (job / "train_rank_1.log").read_text()
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in rank0 and "GLOBAL_RANK: 1, MEMBER: 2/2" in rank1
    submitit = (sweep / ".submitit" / job_id / f"{job_id}_1_log.out").read_text()
    assert "node=1(2), global_rank=1(2)" in submitit  # rank 1 ran on the second node
    assert len(list((job / "checkpoints").glob("epoch_*.ckpt"))) == 1


REFUSED = (
    "Error: trainer.devices=2: SLURM gives 1 task per node (SLURM_NTASKS_PER_NODE=1). "
    "Set trainer.devices=1 or submit with --ntasks-per-node=2."
)


def test_an_allocation_that_does_not_fit_is_refused_before_ddp_starts(
    two_nodes, tmp_path, synthetic_root
) -> None:
    """`srun` with one task per node and `trainer.devices=2`: Lightning #19883's hang
    becomes one line and a failed job, before any process group forms."""
    run = tmp_path / "run"
    train = [sys.executable, "-m", "fracture_lit.train", f"data.root={synthetic_root}", *TINY]
    train += [*ONE_NODE, f"hydra.run.dir={run}"]
    output = tmp_path / "job.out"
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--nodes=1", "--ntasks-per-node=1", "--time=10"]
        + [f"--output={output}", "--wrap", f"srun {shlex.join(train)}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **_env(tmp_path)},
        timeout=60,
        check=True,
    )
    job_id = submitted.stdout.strip().split(";")[0]
    try:
        record = wait_for_record([job_id], timeout=600)
    finally:
        cancel([job_id])
    text = output.read_text()
    assert REFUSED in text, text[-3000:]
    assert "Initializing distributed" not in text
    assert record == {job_id: "FAILED"}
    assert _metrics(run)["status"] == "failed"


def _saved_after(log: str) -> tuple[int, int]:
    """(batch, epoch) of the preemption checkpoint a rank's log reports."""
    found = re.search(r"SIGTERM received: saving \S+ after batch (\d+) of epoch (\d+)", log)
    assert found, log[-3000:]
    return int(found.group(1)), int(found.group(2))


@pytest.mark.slow
def test_two_node_job_requeued_mid_epoch_resumes_to_the_same_metrics(
    two_nodes, tmp_path, synthetic_root
) -> None:
    """Two identical two-node jobs, one after the other; job 1 gets `scontrol requeue`
    just after its first checkpoint. Both ranks stop after the same batch mid-epoch, the
    checkpoint holds both ranks' states, SLURM starts the job again, both ranks resume from
    it (rank 1 takes rank 0's choice), and it ends with job 0's metrics."""
    sweep, job_ids = submit_detached(
        _sweep(
            tmp_path,
            tmp_path / "synthetic48",
            "data.n_per_class=48",
            # 10 batches of 3 an epoch on each rank (29 images; a last batch of 1 would
            # fail in BatchNorm): the signal lands mid-epoch
            "data.batch_size=6",
            "trainer.max_epochs=3",
            "tags=[plain],[requeued]",
            "hydra.launcher.detach=true",
        ),
        tmp_path,
        _env(tmp_path),
    )
    requeued_job, requeued = job_ids[1], sweep / "1"
    last = requeued / "checkpoints" / "last.ckpt"
    try:
        # While the job waits in the queue, its preemption checkpoint is on disk.
        checkpoint = requeue_after_first_checkpoint(
            requeued_job, requeued, lambda: torch.load(last, map_location="cpu", weights_only=True)
        )
        wait_until(
            lambda: all(
                (sweep / n / "metrics.json").is_file() and _metrics(sweep / n)["status"] == "done"
                for n in ("0", "1")
            ),
            900,
            "both jobs to finish",
            poll=2,
        )
    except BaseException:
        cancel(job_ids)
        raise
    assert wait_for_record(job_ids) == dict.fromkeys(job_ids, "COMPLETED")
    for job_id in job_ids:
        assert sorted(job_nodes(job_id)) == ["fracturelit1", "fracturelit2"]
    # Mid-epoch: each rank's own generators are in the checkpoint, and both stopped after
    # the same batch.
    ranks = checkpoint["callbacks"]["ResumableTraining"]["ranks"]
    assert len(ranks) == 2 and all("rng" in own for own in ranks)
    rank0 = (requeued / "train.log").read_text()
    rank1 = (requeued / "train_rank_1.log").read_text()
    assert _saved_after(rank0) == _saved_after(rank1)
    assert "Resuming from" in rank0 and f"Rank 1 resumes from {last}" in rank1
    plain, resumed = _metrics(sweep / "0"), _metrics(requeued)
    assert resumed["epochs"] == plain["epochs"]
    assert Path(resumed["best_model_path"]).name == Path(plain["best_model_path"]).name
    for split in ("val", "test"):
        assert resumed[split] == plain[split], split
