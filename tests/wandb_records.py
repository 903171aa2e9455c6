"""Read the records of an offline W&B run (``run-<id>.wandb``) back, for tests.

The file is a LevelDB-style log (32 KiB blocks of CRC'd chunks, after a 7-byte ``:W&B``
header) of protobuf ``Record`` messages; wandb >= 0.20 no longer ships a Python reader.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7


def _chunks(data: bytes) -> list[bytes]:
    if data[:4] != b":W&B":
        raise ValueError("not a W&B transaction log")
    out, pending, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0:  # zero padding to the end of the block
            pos += left
            continue
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            out.append(pending + chunk)
            pending = b""
    return out


@dataclass
class OfflineRun:
    """What a test wants to know about one offline run."""

    path: Path
    run_id: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history_keys: set[str] = field(default_factory=set)
    history: list[dict[str, str]] = field(default_factory=list)
    files: set[str] = field(default_factory=set)
    artifacts: list[str] = field(default_factory=list)


def read_offline_run(run_dir: Path) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2 as pb

    log = next(Path(run_dir).glob("*.wandb"))
    run = OfflineRun(path=Path(run_dir))
    for chunk in _chunks(log.read_bytes()):
        record = pb.Record()
        record.ParseFromString(chunk)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.group, run.job_type, run.name = (
                r.run_id,
                r.run_group,
                r.job_type,
                r.display_name,
            )
            for item in r.config.update:
                run.config[item.key] = item.value_json
        elif kind == "config":
            for item in record.config.update:
                run.config[item.key or "/".join(item.nested_key)] = item.value_json
        elif kind == "history":
            row = {(i.key or "/".join(i.nested_key)): i.value_json for i in record.history.item}
            run.history.append(row)
            run.history_keys |= set(row)
        elif kind == "files":
            run.files |= {f.path for f in record.files.files}
        elif kind == "artifact":
            run.artifacts.append(record.artifact.name)
    return run
