"""The SLURM pre-flight check's decisions, from injected environments (no cluster needed),
and the rank-0 start record the SLURM-started ranks share. The refusal through a real
``srun`` is in tests/test_slurm_multinode.py."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from lightning.fabric.plugins.environments import SLURMEnvironment
from omegaconf import OmegaConf

from fracture_lit.errors import ConfigError, one_line
from fracture_lit.utils.slurm_preflight import (
    Allocation,
    allocation_mismatch,
    check_allocation,
    expand_tasks_per_node,
    slurm_preflight,
    slurm_starts_the_ranks,
)
from fracture_lit.utils.slurm_ranks import (
    done_before_start,
    record_rank_zero_end,
    share_start_checkpoint,
    start_record_path,
)


def srun_env(ntasks: int, per_node: str | None, nodes: int, **extra: str) -> dict[str, str]:
    """What srun puts in a task's environment (the variables the check reads)."""
    env = {
        "SLURM_JOB_ID": "41",
        "SLURM_JOB_NAME": "train",
        "SLURM_NTASKS": str(ntasks),
        "SLURM_NNODES": str(nodes),
        "SLURM_JOB_NUM_NODES": str(nodes),
        "SLURM_PROCID": "0",
        "SLURM_STEP_ID": "0",
    }
    if per_node is not None:
        env["SLURM_NTASKS_PER_NODE"] = per_node
    return {**env, **extra}


def trainer(devices: object, num_nodes: int | None = None) -> object:
    node = (
        {"devices": devices} if num_nodes is None else {"devices": devices, "num_nodes": num_nodes}
    )
    return OmegaConf.create(node)


@pytest.mark.parametrize(
    ("text", "counts"),
    [("1", [1]), ("2(x3)", [2, 2, 2]), ("2(x3),1", [2, 2, 2, 1]), ("4,4", [4, 4])],
)
def test_per_node_counts_expand(text: str, counts: list[int]) -> None:
    assert expand_tasks_per_node(text) == counts


def test_unreadable_per_node_count_is_one_line() -> None:
    with pytest.raises(ConfigError) as error:
        check_allocation(trainer(2), srun_env(2, "two", 1))
    assert one_line(error.value).startswith("Error: SLURM_NTASKS_PER_NODE=two: cannot be read")


@pytest.mark.parametrize(
    ("devices", "num_nodes", "env"),
    [
        (1, 2, srun_env(2, "1", 2)),  # two nodes, one process each
        (2, 1, srun_env(2, "2", 1)),  # one node, two processes
        (4, 3, srun_env(12, "4(x3)", 3)),
        ([0, 1], 1, srun_env(2, "2", 1)),  # a list of devices counts them
        (1, 1, srun_env(1, None, 1)),  # a plain one-task job
        ("auto", 2, srun_env(4, "2(x2)", 2)),  # auto: devices are counted by Lightning
    ],
)
def test_matching_allocations_pass(devices: object, num_nodes: int, env: dict) -> None:
    check_allocation(trainer(devices, num_nodes), env)


def test_the_example_of_lightning_19883_is_refused_with_both_values_and_the_fix() -> None:
    with pytest.raises(ConfigError) as error:
        check_allocation(trainer(2, 1), srun_env(1, "1", 1))
    assert one_line(error.value) == (
        "Error: trainer.devices=2: SLURM gives 1 task per node (SLURM_NTASKS_PER_NODE=1). "
        "Set trainer.devices=1 or submit with --ntasks-per-node=2."
    )


@pytest.mark.parametrize(
    ("devices", "num_nodes", "env", "expected"),
    [
        (
            1,
            None,  # trainer=default has no num_nodes: one node
            srun_env(2, "1", 2),
            "trainer.num_nodes=1: SLURM gives 2 nodes (SLURM_NNODES=2). Set "
            "trainer.num_nodes=2 or submit with --nodes=1.",
        ),
        (
            1,
            2,
            srun_env(1, "1", 1),
            "trainer.num_nodes=2: SLURM gives 1 node (SLURM_NNODES=1). Set "
            "trainer.num_nodes=1 or submit with --nodes=2.",
        ),
        (
            2,
            4,
            srun_env(7, "2(x3),1", 4),
            "trainer.devices=2: SLURM gives a different number of tasks on each node "
            "(SLURM_NTASKS_PER_NODE=2(x3),1) and DDP needs the same number on every node. "
            "Submit with --nodes=4 --ntasks-per-node=2.",
        ),
        (
            2,
            1,
            srun_env(1, "2", 1),  # Lightning #20391: --ntasks=1 beside --ntasks-per-node=2
            "trainer.devices=2: with trainer.num_nodes=1 that is 2 processes but SLURM "
            "starts 1 task (SLURM_NTASKS=1). Submit with --nodes=1 --ntasks-per-node=2 "
            "and no other --ntasks.",
        ),
        (
            1,
            1,
            srun_env(2, "2", 1),  # every task would train alone into the same folder
            "trainer.devices=1: SLURM gives 2 tasks per node (SLURM_NTASKS_PER_NODE=2). "
            "Set trainer.devices=2 or submit with --ntasks-per-node=1.",
        ),
        (
            2,
            1,
            srun_env(2, None, 1),  # --ntasks=2 alone
            "trainer.devices=2: SLURM gives 2 tasks without a per-node count "
            "(SLURM_NTASKS=2, no SLURM_NTASKS_PER_NODE). Submit with --nodes=1 "
            "--ntasks-per-node=2 instead of --ntasks.",
        ),
    ],
)
def test_mismatches_are_refused(devices, num_nodes, env, expected) -> None:
    with pytest.raises(ConfigError) as error:
        check_allocation(trainer(devices, num_nodes), env)
    assert one_line(error.value) == f"Error: {expected}"


def test_a_job_script_without_srun_is_refused() -> None:
    """sbatch --ntasks-per-node=2 running python directly: only rank 0 would start."""
    env = srun_env(2, "2", 1)
    del env["SLURM_STEP_ID"]
    with pytest.raises(ConfigError) as error:
        check_allocation(trainer(2, 1), env)
    assert one_line(error.value) == (
        "Error: SLURM_NTASKS=2: this process runs in the job script itself, not under srun, "
        "so the other 1 rank never starts. Start it with `srun python -m fracture_lit.train "
        "...` (or submit with hydra/launcher=slurm)."
    )
    del env["SLURM_NTASKS_PER_NODE"]
    env["SLURM_NTASKS"] = "1"
    check_allocation(trainer(1, 1), env)  # one task: the job script may train itself


def test_job_num_nodes_stands_in_for_nnodes() -> None:
    env = srun_env(2, "1", 2)
    del env["SLURM_NNODES"]
    assert Allocation.from_environ(env).nodes == 2
    assert allocation_mismatch(1, 1, Allocation.from_environ(env)) is not None


@pytest.mark.parametrize(
    "env",
    [
        {},  # not on SLURM
        srun_env(1, "1", 1, SLURM_JOB_NAME="bash"),  # salloc / srun --pty bash
        srun_env(1, "1", 1, SLURM_JOB_NAME="interactive"),
        # torchrun inside a SLURM job: Lightning's TorchElastic environment takes over
        srun_env(1, "1", 1, RANK="0", GROUP_RANK="0", LOCAL_RANK="0", LOCAL_WORLD_SIZE="2"),
    ],
)
def test_nothing_is_checked_where_lightning_does_not_take_ranks_from_slurm(env) -> None:
    assert not slurm_starts_the_ranks(env)
    check_allocation(trainer(2, 1), env)  # a mismatch, but not SLURM's tasks: no refusal


@pytest.mark.parametrize(
    "env",
    [
        {},
        srun_env(2, "1", 2),
        srun_env(1, "1", 1, SLURM_JOB_NAME="bash"),
        srun_env(1, "1", 1, SLURM_JOB_NAME="interactive"),
        {"SLURM_JOB_NAME": "train"},  # an allocation's variables without srun's
    ],
)
@pytest.mark.filterwarnings("ignore:The `srun` command is available")
def test_detection_agrees_with_lightnings(env, monkeypatch) -> None:
    for name in [n for n in os.environ if n.startswith("SLURM_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert slurm_starts_the_ranks(env) == SLURMEnvironment.detect()


# --------------------------------------------------------------------------- start record
def run_cfg(folder: Path, ckpt_path: str | None = None) -> object:
    return OmegaConf.create(
        {"paths": {"output_dir": str(folder)}, "ckpt_path": ckpt_path, "trainer": {"devices": 1}}
    )


def test_other_ranks_start_from_rank_zeros_checkpoint(tmp_path: Path) -> None:
    """Rank 1 has no resume decision of its own (it does not share rank 0's environment):
    it waits for rank 0's record of this start and takes its checkpoint."""
    last = str(tmp_path / "checkpoints" / "last.ckpt")
    rank1 = run_cfg(tmp_path)
    waiting = threading.Thread(
        target=share_start_checkpoint,
        args=(rank1, srun_env(2, "1", 2, SLURM_PROCID="1", SLURM_RESTART_COUNT="1")),
        kwargs={"timeout": 60, "poll": 0.05},
    )
    # A record of the job's first start is not this start's.
    start_record_path(tmp_path).parent.mkdir(parents=True)
    start_record_path(tmp_path).write_text(json.dumps({"attempt": "41.0", "ckpt_path": None}))
    waiting.start()
    time.sleep(0.3)
    assert waiting.is_alive()
    rank0 = run_cfg(tmp_path, last)
    with pytest.raises(ConfigError):  # a refused allocation records nothing
        slurm_preflight(rank0, srun_env(2, "2", 1, SLURM_RESTART_COUNT="1"))
    assert waiting.is_alive()
    rank0.trainer.num_nodes = 2
    slurm_preflight(rank0, srun_env(2, "1", 2, SLURM_RESTART_COUNT="1"))
    waiting.join(30)
    assert not waiting.is_alive() and rank1.ckpt_path == last


def test_a_rank_zero_that_never_trains_stops_the_others(tmp_path: Path) -> None:
    record_rank_zero_end(tmp_path, srun_env(2, "1", 2))
    with pytest.raises(RuntimeError, match="rank 0 of SLURM job 41 ended before training"):
        share_start_checkpoint(run_cfg(tmp_path), srun_env(2, "1", 2, SLURM_PROCID="1"))


def test_rank_zero_that_started_is_not_marked_ended(tmp_path: Path) -> None:
    env = srun_env(2, "1", 2)
    share_start_checkpoint(run_cfg(tmp_path, "x.ckpt"), env)
    record_rank_zero_end(tmp_path, env)
    assert json.loads(start_record_path(tmp_path).read_text())["ckpt_path"] == "x.ckpt"


def test_a_single_task_job_writes_no_record(tmp_path: Path) -> None:
    share_start_checkpoint(run_cfg(tmp_path, "x.ckpt"), srun_env(1, "1", 1))
    record_rank_zero_end(tmp_path, srun_env(1, "1", 1))
    assert not start_record_path(tmp_path).exists()


def test_a_done_job_is_left_to_rank_zero_only_under_resume_auto(tmp_path: Path) -> None:
    assert not done_before_start(tmp_path, "auto")
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "failed"}))
    assert not done_before_start(tmp_path, "auto")
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "done"}))
    assert done_before_start(tmp_path, "auto") and not done_before_start(tmp_path, "never")


def test_a_rank_that_never_hears_from_rank_zero_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="need one folder: hydra.run.dir=<folder>"):
        share_start_checkpoint(
            run_cfg(tmp_path), srun_env(2, "1", 2, SLURM_PROCID="1"), timeout=0.3, poll=0.05
        )
