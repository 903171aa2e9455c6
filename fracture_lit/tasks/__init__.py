"""The library code behind each entry point, one module per job (the entry points only wire).

``training`` (train), ``evaluating`` (eval), ``predicting`` (predict), ``exporting`` +
``onnx_model`` (export), ``auditing`` (audit), ``pipeline/`` (pipeline), ``serving`` (serve),
``reporting`` (report), ``tuning`` (tune); ``building`` builds a run's datamodule and model
for all of them; :mod:`.entry` is the decorator every Hydra entry point is. Tests and
benchmarks import these modules, never an entry point.
"""
