"""Finish a killed or interrupted sweep: ``python -m fracture_lit.resume <sweep folder>``.

Runs the sweep's own command again against its folder (see ``utils/sweep_resume.py``):
done jobs are kept, killed jobs continue from their ``last.ckpt``, failed jobs rerun, and
an Optuna search continues its study. Extra overrides after the folder are appended
(e.g. ``hydra.launcher.n_jobs=2``).
"""

from __future__ import annotations

import os
import sys

from fracture_lit.errors import UserError
from fracture_lit.utils.sweep_resume import resume_command

USAGE = "usage: python -m fracture_lit.resume <sweep folder> [overrides...]"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        raise SystemExit(0 if args else 2)
    try:
        command = resume_command(args[0], args[1:])
    except UserError as error:
        print(f"Error: {error.one_line()}", file=sys.stderr)
        raise SystemExit(1) from None
    print("Resuming:", " ".join(command[1:]), flush=True)
    os.execv(command[0], command)  # the sweep's process itself: signals reach it directly


if __name__ == "__main__":
    main()
