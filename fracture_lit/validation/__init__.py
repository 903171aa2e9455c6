"""Config values checked before anything runs: what each entry point's values *mean*.

* :mod:`.checkers`: typed checks of one value (``check_int``, ``check_float``,
  ``check_choice``, writable folders, ...), for any config;
* :mod:`.checkpoints`: checkpoints named in a config (safe to load, same backbone);
* :mod:`.groups`: one config group each (``data/``, ``trainer/``, ``model/``, monitoring);
  a dataset's own keys are checked by its DataModule;
* :mod:`.entries`: ``validate_train``, ``validate_eval``, ... one per entry point.
"""

from fracture_lit.validation.checkers import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_path_exists,
    check_writable_dir,
    check_writable_file,
)
from fracture_lit.validation.checkpoints import check_checkpoint_path
from fracture_lit.validation.entries import (
    validate_audit,
    validate_eval,
    validate_export,
    validate_pipeline,
    validate_predict,
    validate_serve,
    validate_train,
)
from fracture_lit.validation.groups import (
    monitorable_metrics,
    validate_data,
    validate_model,
    validate_monitor,
    validate_trainer,
)

__all__ = [
    "check_bool",
    "check_choice",
    "check_float",
    "check_int",
    "check_path_exists",
    "check_writable_dir",
    "check_writable_file",
    "check_checkpoint_path",
    "monitorable_metrics",
    "validate_audit",
    "validate_data",
    "validate_eval",
    "validate_export",
    "validate_model",
    "validate_monitor",
    "validate_pipeline",
    "validate_predict",
    "validate_serve",
    "validate_train",
    "validate_trainer",
]
