"""Batch augmentation on the device (data.augment_on): the warp, its seeds, the datamodule
wiring and an exactly resumable run, all on CPU (the same code runs on a GPU)."""

from __future__ import annotations

import cv2
import hydra
import numpy as np
import pytest
import torch

from fracture_lit.data.device_augment import AffineStep, DeviceAugment
from fracture_lit.errors import ConfigError
from tests.resume_helpers import (
    RESUMABLE,
    assert_same_results,
    kill_after_checkpoint,
    run_to_end,
    train_command,
)


def _images(n: int = 4, size: int = 32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=gen)


def _with_steps(*steps: AffineStep) -> DeviceAugment:
    augment = DeviceAugment(["none"])
    augment.steps = list(steps)
    return augment


def test_a_certain_flip_is_an_exact_mirror() -> None:
    images = _images()
    out = _with_steps(AffineStep(1.0, flip=True))(images, torch.arange(4))
    torch.testing.assert_close(out, images.flip(-1).float(), atol=1e-3, rtol=0)


def test_rotation_turns_about_the_centre_like_opencv() -> None:
    """A 10-degree warp matches OpenCV's rotation about the image centre (one of the two
    directions; the presets draw angles symmetric about 0) away from the corners."""
    yy, xx = np.mgrid[0:64, 0:64]
    image = ((xx * 3 + yy * 2) % 256).astype(np.uint8)  # no symmetry to hide an error
    augment = _with_steps(AffineStep(1.0, rotate_deg=10.0))
    seed = 7
    angle = float(np.degrees(np.arctan2(*augment.thetas([seed])[0, [1, 0], 0].tolist())))
    warped = augment(torch.from_numpy(image)[None, None], torch.tensor([seed]))[0, 0].numpy()
    centre = slice(16, 48)
    errors = []
    for sign in (1, -1):
        matrix = cv2.getRotationMatrix2D((31.5, 31.5), sign * angle, 1.0)
        reference = cv2.warpAffine(image.astype(np.float32), matrix, (64, 64))
        errors.append(np.abs(warped - reference)[centre, centre].mean())
    unrotated = np.abs(warped - image)[centre, centre].mean()
    assert abs(angle) > 0.5
    assert min(errors) < 1.0 < unrotated


def test_each_sample_is_drawn_from_its_own_seed() -> None:
    augment = DeviceAugment(["rotate_zoom_flip", "shift"])
    images = _images()
    seeds = torch.tensor([11, 12, 13, 14])
    first, again = augment(images, seeds), augment(images, seeds)
    torch.testing.assert_close(first, again)
    # Sample 2 alone, in another batch, gets the same warp: it depends on its seed only.
    torch.testing.assert_close(augment(images[2:3], seeds[2:3])[0], first[2])
    assert not torch.equal(augment(images, seeds + 100), first)


def test_host_only_presets_stay_on_the_host_or_are_refused(tiny_cfg) -> None:
    auto = hydra.utils.instantiate(tiny_cfg("data.augment=[flip_rotate,noise]").data)
    auto.setup("fit")
    assert auto.device_augment is None  # auto on CPU, and noise has no device version
    forced = hydra.utils.instantiate(
        tiny_cfg("data.augment=[flip_rotate,noise]", "data.augment_on=device").data
    )
    with pytest.raises(ConfigError, match=r"data.augment_on=device: .*noise"):
        forced.setup("fit")


def test_device_batches_carry_seeds_and_leave_the_loader_uint8(tiny_cfg) -> None:
    datamodule = hydra.utils.instantiate(tiny_cfg("data.augment_on=device").data)
    datamodule.setup("fit")
    assert datamodule.device_augment is not None
    host_train = hydra.utils.instantiate(tiny_cfg("data.augment_on=host").data)
    host_train.setup("fit")
    images, labels, seeds = next(iter(datamodule.train_dataloader()))
    assert images.dtype == torch.uint8 and seeds.shape == labels.shape
    x, y = datamodule.on_after_batch_transfer([images, labels, seeds], 0)
    assert x.dtype == torch.float32 and x.shape == images.shape and torch.equal(y, labels)
    # Validation batches are neither augmented nor seeded; the same as on the host.
    val_device = next(iter(datamodule.val_dataloader()))
    val_host = next(iter(host_train.val_dataloader()))
    assert len(val_device) == 2 and torch.equal(val_device[0], val_host[0])


def test_killed_run_with_device_augmentation_resumes_exactly(tmp_path, synthetic_root) -> None:
    def args(run):
        return train_command(
            *RESUMABLE,
            f"data.root={synthetic_root}",
            f"hydra.run.dir={run}",
            "data.augment_on=device",
        )

    reference, killed = tmp_path / "reference", tmp_path / "killed"
    run_to_end(args(reference), tmp_path)
    kill_after_checkpoint(
        args(killed), tmp_path, killed / "checkpoints" / "last.ckpt", 1, tmp_path / "k.log"
    )
    run_to_end(args(killed), tmp_path)
    assert "runs on the device" in (reference / "train.log").read_text()
    assert_same_results(reference, killed)
