"""Download a registered dataset: ``python -m fracture_lit.data.download <name> [--dest DIR]``.

Kaggle datasets go through ``kagglehub`` when it is importable, else the ``kaggle`` CLI when
it is on PATH; FracAtlas comes from figshare over plain HTTPS (urllib). Neither Kaggle tool
is a dependency of the project, so both are looked up lazily. Without a tool or without a
network the command fails within seconds (a 5 s connectivity probe, bounded even when DNS
hangs) and says what to install, where to download by hand and what layout to unpack to.

After a download the dataset's indexer runs on the result, so success means "the training
code can read it", and the folder to point ``data.root`` at is printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlparse

from fracture_lit.data.dataset_info import DatasetInfo, DatasetLayoutError
from fracture_lit.data.registry import (
    DATASETS,
    find_dataset_root,
    get_dataset,
    index_dataset,
)

__all__ = ["DownloadError", "can_connect", "default_dest", "download", "main"]

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0
FIGSHARE_API = "https://api.figshare.com/v2/articles/{article}"


class DownloadError(RuntimeError):
    """The dataset could not be fetched; the message says how to get it by hand."""


def default_dest(info: DatasetInfo) -> Path:
    """``$FRACTURE_LIT_DATA_DIR/<folder>``, else ``./data/<folder>`` (the configs' data_dir)."""
    return Path(os.environ.get("FRACTURE_LIT_DATA_DIR", "data")) / info.default_dir


def can_connect(host: str, port: int = 443, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """True when a TCP connection to ``host:port`` opens within ``timeout`` seconds.

    Runs in a daemon thread joined with the same timeout, because name resolution is not
    covered by the socket timeout and can hang far longer on an offline machine.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])


def _proxy_configured() -> bool:
    return any(os.environ.get(k) for k in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"))


def _manual_help(info: DatasetInfo, dest: Path) -> str:
    how = (
        f"  kaggle datasets download -d {info.kaggle_slug} -p {dest} --unzip"
        if info.kaggle_slug
        else f"  download the zip from {info.source_url} and unzip it into {dest}"
    )
    layout = "\n".join("  " + line for line in info.layout.strip("\n").splitlines())
    return (
        f"Download by hand from {info.source_url} (licence: {info.licence}):\n{how}\n"
        f"Unpack so that the dataset root looks like:\n{layout}"
    )


def _check_online(info: DatasetInfo, host: str, dest: Path) -> None:
    if _proxy_configured():
        return  # a direct probe says nothing behind a proxy; urllib/kaggle use the proxy
    if not can_connect(host):
        raise DownloadError(
            f"Cannot reach {host}:443 within {CONNECT_TIMEOUT_S:.0f} s: no network (or a "
            f"firewall) on this machine.\n{_manual_help(info, dest)}"
        )


def _kaggle_tool() -> str | None:
    if importlib.util.find_spec("kagglehub") is not None:
        return "kagglehub"
    if shutil.which("kaggle"):
        return "kaggle"
    return None


def _download_kaggle(info: DatasetInfo, dest: Path) -> None:
    tool = _kaggle_tool()
    if tool is None:
        raise DownloadError(
            f"'{info.name}' is on Kaggle ({info.kaggle_slug}) and neither kagglehub nor the "
            "kaggle CLI is installed.\n"
            "  pip install kagglehub      (public datasets; or `pip install kaggle` and put\n"
            "                              your API token in ~/.kaggle/kaggle.json)\n"
            + _manual_help(info, dest)
        )
    _check_online(info, "www.kaggle.com", dest)
    dest.mkdir(parents=True, exist_ok=True)
    if tool == "kagglehub":
        import kagglehub  # lazy: optional, and slow to import

        try:
            cached = Path(kagglehub.dataset_download(info.kaggle_slug))
        except Exception as exc:  # noqa: BLE001 - report any failure with the manual route
            raise DownloadError(f"kagglehub failed: {exc}\n{_manual_help(info, dest)}") from exc
        print(f"Copying {cached} -> {dest}", flush=True)
        shutil.copytree(cached, dest, dirs_exist_ok=True)
    else:
        cmd = ["kaggle", "datasets", "download", "-d", info.kaggle_slug, "-p", str(dest), "--unzip"]
        print("Running:", " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, check=False)
        if proc.returncode != 0:
            raise DownloadError(
                f"`{' '.join(cmd)}` failed (exit {proc.returncode}); is your Kaggle API token "
                f"in ~/.kaggle/kaggle.json?\n{_manual_help(info, dest)}"
            )


def _fetch(url: str, target: Path) -> None:
    """Stream ``url`` to ``target`` (via a .part file, so a broken download is never used)."""
    part = target.with_name(target.name + ".part")
    request = urllib.request.Request(url, headers={"User-Agent": "fracture_lit-download"})
    with (
        urllib.request.urlopen(request, timeout=READ_TIMEOUT_S) as response,
        part.open("wb") as out,
    ):
        total = int(response.headers.get("Content-Length") or 0)
        done, next_report = 0, 0
        while chunk := response.read(1 << 20):
            out.write(chunk)
            done += len(chunk)
            if done >= next_report:
                size = f" / {total / 1e6:.0f} MB" if total else " MB"
                print(f"  {target.name}: {done / 1e6:.0f}{size}", flush=True)
                next_report = done + (50 << 20)
    os.replace(part, target)


def _download_figshare(info: DatasetInfo, dest: Path) -> None:

    api = FIGSHARE_API.format(article=info.figshare_article)
    _check_online(info, urlparse(api).hostname or "api.figshare.com", dest)
    try:
        with urllib.request.urlopen(api, timeout=READ_TIMEOUT_S) as response:
            files = json.load(response).get("files", [])
    except (OSError, ValueError) as exc:
        raise DownloadError(
            f"figshare API {api} failed: {exc}\n{_manual_help(info, dest)}"
        ) from exc
    if not files:
        raise DownloadError(f"figshare lists no files at {api}\n{_manual_help(info, dest)}")
    dest.mkdir(parents=True, exist_ok=True)
    for entry in files:
        target = dest / entry["name"]
        print(f"Fetching {entry['download_url']} -> {target}", flush=True)
        try:
            _fetch(entry["download_url"], target)
        except OSError as exc:
            raise DownloadError(f"download failed: {exc}\n{_manual_help(info, dest)}") from exc
        if zipfile.is_zipfile(target):
            with zipfile.ZipFile(target) as archive:
                archive.extractall(dest)
            target.unlink()


def download(name: str, dest: str | os.PathLike[str] | None = None) -> Path:
    """Fetch dataset ``name`` into ``dest`` and check it indexes; returns the dataset root."""
    info = get_dataset(name)
    target = Path(dest) if dest is not None else default_dest(info)
    if info.kaggle_slug:
        _download_kaggle(info, target)
    elif info.figshare_article:
        _download_figshare(info, target)
    else:  # pragma: no cover - every registered dataset has a source
        raise DownloadError(_manual_help(info, target))
    try:
        index = index_dataset(info.name, target)
    except DatasetLayoutError as exc:
        raise DownloadError(
            f"Downloaded, but the files are not in the expected layout:\n{exc}"
        ) from exc
    root = find_dataset_root(info.name, target)
    print(f"{info.title}: {len(index.samples):,} images, classes {index.classes}.")
    print(f"Point the data root at: {root}")
    return root


def main(argv: list[str] | None = None) -> int:
    names = sorted(DATASETS)
    parser = argparse.ArgumentParser(
        prog="python -m fracture_lit.data.download",
        description="Download a fracture dataset into the layout its indexer expects.",
        epilog="Datasets:\n"
        + "\n".join(f"  {n:<14} {DATASETS[n].title} ({DATASETS[n].source_url})" for n in names),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", help="one of: " + ", ".join(names))
    parser.add_argument("--dest", help="target folder (default: data/<dataset folder>)")
    args = parser.parse_args(argv)
    try:
        info = get_dataset(args.name)
    except KeyError:
        print(f"Unknown dataset {args.name!r}. Known datasets: {', '.join(names)}", file=sys.stderr)
        return 2
    try:
        download(info.name, args.dest)
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
