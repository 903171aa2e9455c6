"""User errors, and the one clean exit every entry point ends with.

A *user error* is something the person running the command can fix: a config value, a
missing or damaged file, a folder that cannot be written. It is reported as ONE line on
stderr that names the key, value or file and the fix, with exit code 1 and no traceback
(``HYDRA_FULL_ERROR=1`` shows the traceback). Everything else is a bug and keeps its
traceback.

* :class:`UserError` is the base; library errors meant for a person derive from it *and*
  keep their builtin base (``CheckpointError(UserError, ValueError)``) so existing
  ``except ValueError`` code still catches them.
* :func:`clean_exit` wraps the body of an entry point's task function (inside
  ``@hydra.main``, whose own handler would print a traceback). It sits outside the
  job-record bookkeeping, which records the failure in the run folder and re-raises. In a
  multirun the error is re-raised unchanged, so the launcher records that job and the
  sweep keeps its semantics.
* :func:`check_command_line` runs before Hydra composes anything: a typo in a key or a
  group option becomes one line with the nearest valid name instead of Hydra's
  multi-line composition error.

This module imports nothing heavy: every library module may raise these errors.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fracture_lit.config import CONFIG_DIR, register_resolvers

__all__ = [
    "ConfigError",
    "OutputNotWritableError",
    "UserError",
    "check_command_line",
    "clean_exit",
    "nearest",
    "one_line",
    "user_error_of",
]

log = logging.getLogger("fracture_lit")

EXIT_USER_ERROR = 1


class UserError(Exception):
    """Something the user can fix; reported as one line (see :func:`one_line`)."""

    def one_line(self) -> str:
        """The message on one line (subclasses with multi-line messages shorten it)."""
        return _flatten(str(self))


class ConfigError(UserError, ValueError):
    """A configuration value that is out of range, of the wrong type, or contradicts another.

    The message always starts with ``key=value:`` so the user sees what to change.
    """

    def __init__(self, key: str, value: Any, problem: str, fix: str = "") -> None:
        self.key, self.value = key, value
        text = f"{key}={show_value(value)}: {problem.rstrip('.')}."
        super().__init__(f"{text} {fix}".strip())


class OutputNotWritableError(UserError, OSError):
    """An output location (run, checkpoint, predict or export folder) cannot be written."""


def show_value(value: Any) -> str:
    """A value as the user would type it on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value if value and not re.search(r"\s", value) else repr(value)
    try:  # ListConfig / DictConfig as plain containers
        from omegaconf import OmegaConf

        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value)
    except ImportError:  # pragma: no cover - omegaconf ships with hydra
        pass
    if isinstance(value, list | tuple):
        return "[" + ",".join(show_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{show_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def nearest(name: str, candidates: Sequence[str]) -> str | None:
    """The candidate closest to a mistyped ``name`` (difflib), or None."""
    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    if not found and "." in name:  # compare the last component only
        tail = name.rsplit(".", 1)[-1]
        by_tail = {c.rsplit(".", 1)[-1]: c for c in candidates}
        close = difflib.get_close_matches(tail, list(by_tail), n=1, cutoff=0.7)
        found = [by_tail[close[0]]] if close else []
    return found[0] if found else None


def _flatten(text: str) -> str:
    """The first paragraph of ``text`` on one line."""
    paragraph = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines() if line.strip())


def user_error_of(error: BaseException) -> UserError | None:
    """The :class:`UserError` behind ``error`` (Hydra wraps errors raised while
    instantiating a ``_target_`` in an ``InstantiationException``), or None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def one_line(error: BaseException) -> str:
    """What the user sees: ``Error: <message on one line>``."""
    user = user_error_of(error)
    text = user.one_line() if user is not None else _flatten(f"{type(error).__name__}: {error}")
    return f"Error: {text}"


def _full_error() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR", "0") not in ("", "0", "false", "False")


def _is_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:  # pragma: no cover
        return False
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _log_to_files(line: str) -> None:
    """Put the line into the run's log file too (the console gets it once, on stderr)."""
    record = logging.LogRecord("fracture_lit", logging.ERROR, __file__, 0, line, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def exit_with(error: BaseException) -> None:
    """Print the one line to stderr and exit with :data:`EXIT_USER_ERROR`."""
    line = one_line(error)
    _log_to_files(line)
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    sys.exit(EXIT_USER_ERROR)


@contextmanager
def clean_exit(also: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Turn a user error raised inside into one stderr line and exit code 1.

    ``also`` names further exception types an entry point treats as user errors (e.g.
    ``FileNotFoundError`` for predict's ``input=``). Other exceptions, ``HYDRA_FULL_ERROR=1``
    and multirun jobs keep the exception (and Hydra's traceback).
    """
    try:
        yield
    except Exception as error:
        if _full_error() or _is_multirun():
            raise
        if user_error_of(error) is None and not isinstance(error, also):
            raise
        exit_with(error)


# --------------------------------------------------------------------------- command line

_HYDRA_FLAGS_WITHOUT_CHECK = {
    "--help",
    "-h",
    "--hydra-help",
    "--version",
    "--cfg",
    "-c",
    "--info",
    "-i",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--shell-completion",
    "-sc",
    "--experimental-rerun",
}


def _flat_keys(node: Any, prefix: str = "") -> list[str]:
    from omegaconf import DictConfig

    keys: list[str] = []
    if isinstance(node, DictConfig):
        for key in list(node):
            full = f"{prefix}{key}"
            keys.append(full)
            try:
                child = node._get_node(key)
            except Exception:  # noqa: BLE001 - an unreadable node has no sub-keys to offer
                continue
            if isinstance(child, DictConfig):
                keys.extend(_flat_keys(child, f"{full}."))
    return keys


def _first_values(args: Sequence[str]) -> list[str] | None:
    """The overrides with each sweep (``a,b``) reduced to its first value; None when an
    override cannot be parsed here (Hydra then reports it itself)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        overrides = OverridesParser.create().parse_overrides(list(args))
    except Exception:  # noqa: BLE001 - Hydra's own parser error is clear enough
        return None
    simple: list[str] = []
    for override, text in zip(overrides, args, strict=True):
        key = override.get_key_element()
        if override.key_or_group.startswith(("hydra.run.", "hydra.sweep.")):
            simple.append(text)  # where the run folder goes: checked below
            continue
        if override.key_or_group.split("/")[0].split(".")[0] == "hydra":
            continue
        if override.is_sweep_override():
            try:
                first = next(iter(override.sweep_string_iterator()))
            except Exception:  # noqa: BLE001 - ranges/intervals: leave them to Hydra
                continue
            simple.append(f"{key}={first}")
        else:
            simple.append(text)
    return simple


def _composition_error(config_name: str, overrides: list[str], error: Exception) -> str:
    """One line for a failed composition, with the nearest valid key or option."""
    from hydra import compose, initialize_config_dir  # Hydra loads only for a failed command line

    text = str(error)
    cause = error.__cause__
    missing_key = re.search(r"Could not override '([^']+)'", text)
    if missing_key and cause is not None and "not in struct" in str(cause):
        key = missing_key.group(1)
        value = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == key), "")
        others = [o for o in overrides if o.split("=", 1)[0] != key]
        keys: list[str] = []
        try:
            with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
                keys = _flat_keys(compose(config_name, overrides=others))
        except Exception:  # noqa: BLE001 - no suggestion then
            pass
        guess = nearest(key, keys)
        hint = f" Did you mean {guess}={value}?" if guess else ""
        return (
            f"{key}={value}: no such key in the {config_name} config.{hint} "
            f"(To add a new key on purpose, write +{key}={value}.)"
        )
    options = getattr(error, "options", None)
    group = re.search(r"Could not find '([^']+)/([^'/]+)'", text)
    if group and options:
        name, wrong = group.group(1), group.group(2)
        guess = nearest(wrong, options)
        hint = f" Did you mean {name}={guess}?" if guess else ""
        return (
            f"{name}={wrong}: no such option.{hint} Options in conf/{name}/: {', '.join(options)}."
        )
    detail = f" ({_flatten(str(cause))})" if cause is not None else ""
    return _flatten(text) + detail


def check_command_line(config_name: str, argv: Sequence[str] | None = None) -> None:
    """Compose ``config_name`` with the command line's overrides before Hydra does, and
    exit with one line (nearest key or option) when that fails.

    Sweeps are checked with their first value; anything this check cannot judge (Hydra
    flags, ranges) is left to Hydra. Costs one composition (a fraction of a second).
    """
    if _full_error():
        return
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a.split("=", 1)[0] in _HYDRA_FLAGS_WITHOUT_CHECK for a in args):
        return
    overrides = _first_values([a for a in args if not a.startswith("-")])
    if overrides is None:
        return
    # Hydra loads here, not when errors.py is imported: every module imports this one.
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_resolvers()
    try:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as error:
        line = f"Error: {_composition_error(config_name, overrides, error)}"
        sys.stderr.write(line + "\n")
        sys.exit(EXIT_USER_ERROR)
    multirun = any(a in ("-m", "--multirun") for a in args)
    problem = _run_folder_problem(cfg, "hydra.sweep.dir" if multirun else "hydra.run.dir")
    if problem:
        sys.stderr.write(f"Error: {problem}\n")
        sys.exit(EXIT_USER_ERROR)


def _run_folder_problem(cfg: Any, key: str) -> str | None:
    """Why Hydra could not create the run (or sweep) folder, judged before it tries: the
    nearest existing ancestor must be a writable folder. (The ``${now:}`` in the name may
    resolve a second later for Hydra; only existing ancestors matter.)"""
    from omegaconf import OmegaConf

    try:
        folder = Path(str(OmegaConf.select(cfg, key))).expanduser().absolute()
    except Exception:  # noqa: BLE001 - unresolvable here: Hydra reports it
        return None
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return (
            f"{key}={folder}: {probe} is a file, not a folder. Move it away or choose "
            f"another folder with {key}=..."
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        return (
            f"{key}={folder}: cannot write in {probe} (permission denied or read-only). "
            f"Choose a writable folder with {key}=... or run from another directory."
        )
    return None
