"""Find a learning rate or the largest batch: ``python -m fracture_lit.tune lr|batch_size``.

``python -m fracture_lit.tune lr [overrides]`` runs Lightning's learning-rate finder on the
data and model the overrides configure (as ``fracture_lit.train`` would build them), saves
the curve as ``lr_find.png`` / ``lr_find.csv`` in a run folder of its own and prints the
override to use (``model.optimizer.lr=...``). ``python -m fracture_lit.tune batch_size
[overrides]`` finds the largest training batch that fits on one device and says how it
scales to ``trainer.devices``. Settings: ``tune.<key>=...`` (``conf/tune/<finder>.yaml``).
The work is :mod:`fracture_lit.tasks.tuning`.
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from fracture_lit.config import CONFIG_DIR, group_options, register_resolvers
from fracture_lit.errors import EXIT_USER_ERROR, check_command_line, clean_exit

USAGE = "usage: python -m fracture_lit.tune {lr,batch_size} [overrides...]"
_MULTIRUN = ("-m", "--multirun", "hydra.mode=MULTIRUN")


def _is_multirun(args: list[str]) -> bool:
    return any(
        a in _MULTIRUN or a.startswith(("hparams_search=", "+hparams_search=")) for a in args
    )


def main(argv: list[str] | None = None) -> None:
    # The finders are conf/tune's options: usage and typos answer before torch loads.
    finders = group_options("tune")
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in finders:
        print(USAGE, file=sys.stderr if args and args[0] not in ("-h", "--help") else sys.stdout)
        raise SystemExit(0 if args and args[0] in ("-h", "--help") else 2)
    finder, overrides = args[0], args[1:]
    if _is_multirun(overrides):
        print(
            "Error: a finder cannot run inside a multirun (-m, hparams_search=...): it measures "
            "one configuration. Run it once per configuration, without -m.",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_USER_ERROR)
    overrides = [f"+tune={finder}", *overrides]
    if not any(o.startswith("task_name=") for o in overrides):
        overrides.append(f"task_name=tune_{finder}")
    check_command_line("train", overrides)
    register_resolvers()
    sys.argv = [sys.argv[0], *overrides]

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
    def tune(cfg: DictConfig) -> None:
        # Imported once the command line is checked: the task loads torch.
        from fracture_lit.tasks.tuning import FinderRefused, run_finder

        with clean_exit(also=(FinderRefused,)):
            multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
            record = run_finder(finder, cfg, multirun=multirun)
            print(record["message"], flush=True)

    tune()


if __name__ == "__main__":
    main()
