"""What a dataset tells a person: where it comes from, its folder tree, how to get it.

:class:`DatasetInfo` is declared by each dataset module (:mod:`fracture_lit.data.datasets`);
:class:`DatasetLayoutError` carries it into the message when a root is missing or
mis-shaped, because "0 images found" three minutes into a run is the usual way this goes
wrong.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from fracture_lit.errors import UserError

__all__ = ["DatasetInfo", "DatasetLayoutError"]


@dataclass(frozen=True)
class DatasetInfo:
    """What the project knows about one public dataset: where it comes from and its shape.

    ``kaggle_slug`` or ``figshare_article`` tells :mod:`fracture_lit.data.download` how to
    fetch it; ``layout`` is the tree shown in error messages; ``default_dir`` is the folder
    name the download creates under the data directory.
    """

    #: The registry name (``data=<name>``, the download command's argument).
    name: str
    #: Shown in error messages: the dataset and its paper.
    title: str
    source_url: str
    licence: str
    #: The expected folder tree, drawn in layout errors.
    layout: str
    #: The folder a download creates under the data directory.
    default_dir: str
    kaggle_slug: str | None = None
    figshare_article: int | None = None
    doi: str | None = None
    notes: str = ""
    #: Other spellings ``get_dataset`` accepts.
    aliases: tuple[str, ...] = ()

    @property
    def downloadable(self) -> bool:
        """Whether ``python -m fracture_lit.data.download`` can fetch it."""
        return bool(self.kaggle_slug or self.figshare_article)

    @property
    def download_command(self) -> str:
        return f"python -m fracture_lit.data.download {self.name}"

    @property
    def download_instructions(self) -> str:
        """Every way to get the data, most automatic first, for error messages and --help."""
        lines = []
        if self.downloadable:
            lines.append(f"Download it with:  {self.download_command} [--dest DIR]")
        if self.kaggle_slug:
            lines.append(
                f"  (needs `pip install kagglehub` or the `kaggle` CLI; or by hand: "
                f"kaggle datasets download -d {self.kaggle_slug} --unzip)"
            )
        if self.figshare_article:
            lines.append(
                f"  (fetches the zip from figshare article {self.figshare_article}"
                + (f", doi:{self.doi}" if self.doi else "")
                + ")"
            )
        lines.append(f"Source: {self.source_url}  (licence: {self.licence})")
        return "\n".join(lines)


class DatasetLayoutError(UserError, FileNotFoundError):
    """The dataset root is missing or its folders are not the layout the indexer expects.

    A ``FileNotFoundError`` so that code treating "no data" generically still catches it;
    the message is written for a person: path, what is wrong, the expected tree and how to
    download the dataset.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        problem: str,
        info: DatasetInfo | None = None,
        layout: str | None = None,
    ) -> None:
        self.path = str(path)
        self.problem = problem
        self.info = info
        self.layout = layout
        title = f"Dataset '{info.name}' ({info.title})" if info else "Image dataset"
        parts = [f"{title}: {problem}", f"  path: {self.path}"]
        tree = layout if layout is not None else (info.layout if info else None)
        if tree:
            parts += ["Expected layout:", _indent(tree, "  ")]
        if info:
            parts.append(info.download_instructions)
        super().__init__("\n".join(parts))

    def one_line(self) -> str:
        """Title, problem and path; the layout tree only goes with the full message."""
        title = f"Dataset '{self.info.name}'" if self.info else "Image dataset"
        if self.info is None:
            fix = " Point data.root at a folder with one sub-folder per class."
        elif self.info.downloadable:
            fix = f" Point data.root at it, or download it: {self.info.download_command}."
        else:
            fix = " Point data.root at it."
        if "data." in self.problem:  # the problem already says what to change
            fix = ""
        return f"data.root={self.path}: {title}: {self.problem}{fix}"

    def __reduce__(self):  # keep it picklable (DataLoader workers, multiprocessing)
        return (DatasetLayoutError, (self.path, self.problem, self.info, self.layout))


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.strip("\n").splitlines())
