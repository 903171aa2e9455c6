"""Start real training processes, kill them at a checkpoint, compare runs (tests only)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from tests.conftest import REPO_ROOT

# A run small enough for several processes per test, with dropout so the global RNG
# matters, and augmentation (the default flip_rotate) so its random state does too.
RESUMABLE = [
    "model=timm",
    "model.backbone=mobilenetv3_small_050",
    "model.drop_rate=0.3",
    "data.n_per_class=24",
    "data.render_size=64",
    "data.image_size=32",
    "data.batch_size=8",
    "trainer.max_epochs=4",
    "trainer.accelerator=cpu",
    "trainer.enable_model_summary=false",
    "trainer.num_sanity_val_steps=0",
    "~callbacks.rich_progress_bar",
    "~callbacks.model_summary",
    "~callbacks.review",
    "model.n_bootstrap=20",
]


def train_command(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "fracture_lit.train", *overrides]


def environment(root: Path) -> dict[str, str]:
    """The tests' code (this worktree) and a root for the run folders."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "FRACTURE_LIT_ROOT": str(root)}


def checkpoint_epoch(path: Path) -> int | None:
    """The epoch a complete checkpoint file was written at, else None."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # noqa: BLE001 - absent, or being replaced right now
        return None


def start(args: list[str], root: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        cwd=root,
        env=environment(root),
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        start_new_session=True,
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    """A suite started in the background (``cmd &`` in a script) inherits SIGINT ignored, and
    Python then installs no KeyboardInterrupt handler: Ctrl-C tests need the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(
    process: subprocess.Popen, ready, timeout: float = 600, what: str = "a checkpoint"
) -> None:
    """Poll ``ready()`` until true; fail if the process ends first or time runs out."""
    deadline = time.time() + timeout
    while not ready():
        if process.poll() is not None:
            raise AssertionError(f"the process ended (rc {process.returncode}) before {what}")
        if time.time() > deadline:
            process.kill()
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.05)


def kill_after_checkpoint(args: list[str], root: Path, last: Path, epoch: int, log: Path) -> int:
    """Start a training process and SIGKILL it once ``last`` holds ``epoch`` or later;
    returns the epoch of the checkpoint it was killed after."""
    process = start(args, root, log)
    seen: list[int] = []

    def ready() -> bool:
        found = checkpoint_epoch(last)
        if found is not None and found >= epoch:
            seen.append(found)
            return True
        return False

    wait_for(process, ready, what=f"last.ckpt of epoch {epoch}")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return seen[0]


def run_to_end(args: list[str], root: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        args, cwd=root, env=environment(root), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def assert_same_results(reference: Path, resumed: Path) -> None:
    """Val/test metrics of the best checkpoint, the best checkpoint itself, the history."""
    a, b = metrics(reference), metrics(resumed)
    assert b["status"] == "done"
    for split in ("val", "test"):
        assert a[split]["metrics"] == b[split]["metrics"], split
        assert a[split]["confusion_matrix"] == b[split]["confusion_matrix"], split
    assert Path(a["best_model_path"]).name == Path(b["best_model_path"]).name
    best_a = torch.load(a["best_model_path"], map_location="cpu", weights_only=True)
    best_b = torch.load(b["best_model_path"], map_location="cpu", weights_only=True)
    for key, value in best_a["state_dict"].items():
        assert torch.equal(value, best_b["state_dict"][key]), key
    history_a = (reference / "csv" / "metrics.csv").read_text()
    assert history_a == (resumed / "csv" / "metrics.csv").read_text()
