"""Typed checks of one config value: its type, its range, its choices, its path.

Each reads the value at a dotted key (interpolations resolved), accepts a missing key (the
config has no such setting) and raises :class:`~fracture_lit.errors.ConfigError` whose one
line names the key, the bad value and what is allowed.
"""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from fracture_lit.errors import ConfigError, OutputNotWritableError

#: What :func:`get_value` returns for a key the config does not have.
MISSING = object()


def get_value(cfg: Any, key: str) -> Any:
    """The value at dotted ``key`` (interpolations resolved), or :data:`MISSING`."""
    node = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return MISSING
        node = node[part]
    return node


def _to_check(cfg: Any, key: str, optional: bool) -> Any:
    """The value at ``key``, or :data:`MISSING` when there is nothing to check."""
    value = get_value(cfg, key)
    return MISSING if value is None and optional else value


def _allowed(
    noun: str,
    low: float | None,
    high: float | None,
    low_open: bool = False,
    high_open: bool = False,
    *,
    optional: bool = False,
    extra: Sequence[int] = (),
) -> str:
    """What a number check allows, as the error message says it: 'an integer >= 1, or null'."""
    if low is not None and high is not None:
        text = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        text = f"{'>' if low_open else '>='} {low:g}"
    elif high is not None:
        text = f"{'<' if high_open else '<='} {high:g}"
    else:
        text = "any number"
    text = f"{noun} {text}"
    if extra:
        text += f" (or {', '.join(str(e) for e in extra)})"
    return text + (", or null" if optional else "")


def _in_range(
    number: float, low: float | None, high: float | None, low_open: bool, high_open: bool
) -> bool:
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    return not (too_low or too_high or number != number)  # NaN is never in range


def check_int(
    cfg: Any,
    key: str,
    low: int | None = None,
    high: int | None = None,
    *,
    optional: bool = False,
    extra: Sequence[int] = (),
    fix: str = "",
) -> int | None:
    """An integer in [low, high] (or one of ``extra``); null only when ``optional``."""
    value = _to_check(cfg, key, optional)
    if value is MISSING:
        return None
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if not is_int or (value not in extra and not _in_range(value, low, high, False, False)):
        allowed = _allowed("an integer", low, high, optional=optional, extra=extra)
        raise ConfigError(key, value, f"must be {allowed}", fix)
    return value


def check_float(
    cfg: Any,
    key: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
    fix: str = "",
) -> float | None:
    """A number in the given range; null only when ``optional``."""
    value = _to_check(cfg, key, optional)
    if value is MISSING:
        return None
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or not _in_range(float(value), low, high, low_open, high_open):
        allowed = _allowed("a number", low, high, low_open, high_open, optional=optional)
        raise ConfigError(key, value, f"must be {allowed}", fix)
    return float(value)


def check_choice(
    cfg: Any, key: str, choices: Sequence[Any], *, optional: bool = False, fix: str = ""
) -> Any:
    """One of ``choices`` (the nearest one suggested); null only when ``optional``."""
    value = _to_check(cfg, key, optional)
    if value is MISSING:
        return None
    if value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        shown = ", ".join(str(c) for c in choices) + (", or null" if optional else "")
        raise ConfigError(key, value, f"must be one of {shown}{hint}", fix)
    return value


def check_bool(cfg: Any, key: str) -> bool | None:
    value = get_value(cfg, key)
    if value is MISSING:
        return None
    if not isinstance(value, bool):
        raise ConfigError(key, value, "must be true or false")
    return value


def _probe_write(directory: Path) -> None:
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".write_test_"):
        pass


def check_writable_dir(path: Any, key: str) -> Path:
    """Create ``path`` if needed and prove a file can be written in it."""
    folder = Path(str(path)).expanduser()
    if folder.exists() and not folder.is_dir():
        raise OutputNotWritableError(
            f"{key}={folder}: this is a file, not a folder. Move it away or choose another "
            f"folder with {key}=..."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _probe_write(folder)
    except OSError as error:
        raise OutputNotWritableError(
            f"{key}={folder}: cannot write there ({error.strerror or error}). Choose a "
            f"writable folder with {key}=... (nothing has run yet)."
        ) from error
    return folder


def check_writable_file(path: Any, key: str) -> Path:
    """The file's folder is writable and the path is not a folder."""
    target = Path(str(path)).expanduser()
    if target.is_dir():
        raise OutputNotWritableError(
            f"{key}={target}: this is a folder; give a file name, e.g. {target / 'out'}"
        )
    check_writable_dir(target.parent, f"{key} (its folder)")
    return target


def check_path_exists(cfg: Any, key: str, what: str = "file") -> None:
    """An input path that must exist (null and a missing key pass)."""
    value = get_value(cfg, key)
    if value is MISSING or value is None:
        return
    path = Path(str(value)).expanduser()
    if not path.exists():
        raise ConfigError(key, value, f"no such {what}", f"Fix the path or set {key}=null.")
