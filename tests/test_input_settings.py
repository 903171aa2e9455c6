"""One resolver of a checkpoint's input settings, with one set of defaults."""

from __future__ import annotations

import pytest

from fracture_lit.data.input_settings import InputSettings, resolve_input_settings


def test_resolver_reads_the_datamodule_state_and_the_fracture_lit_block() -> None:
    checkpoint = {
        "state_dict": {},
        "hyper_parameters": {"in_chans": 3},
        "FracAtlasDataModule": {
            "classes": ["non_fractured", "fractured"],
            "image_size": 96,
            "resize_mode": "letterbox",
            "in_chans": 1,
            "normalize": "unit",
            "preprocess": ["clahe", "edges"],
        },
        "fracture_lit": {
            "class_names": ["non_fractured", "fractured"],
            "decision_threshold": 0.37,
            "temperature": 1.5,
        },
    }
    settings = resolve_input_settings(checkpoint)
    assert settings == InputSettings(
        class_names=("non_fractured", "fractured"),
        image_size=96,
        resize_mode="letterbox",
        normalize="unit",
        in_chans=1,
        preprocess=("clahe", "edges"),
        threshold=0.37,
        temperature=1.5,
    )
    assert settings.binary and settings.positive_class == "fractured"
    assert settings.label([0.6, 0.4]) == 1 and settings.label([0.7, 0.3]) == 0
    assert settings.data_overrides()["preprocess"] == ["clahe", "edges"]
    assert settings.to_dict()["class_names"] == ["non_fractured", "fractured"]
    hash(settings)  # frozen: usable as a key (ensembles group members by pixels)


def test_missing_keys_take_the_one_set_of_defaults() -> None:
    settings = resolve_input_settings({"fracture_lit": {"class_names": ["a", "b", "c"]}})
    defaults = InputSettings()
    assert settings.pixels == defaults.pixels
    assert (settings.threshold, settings.temperature) == (0.5, 1.0)
    assert not settings.binary and settings.positive_class is None
    assert settings.label([0.2, 0.5, 0.3]) == 1
    with pytest.raises(ValueError, match="temperature"):
        InputSettings(temperature=0.0)
