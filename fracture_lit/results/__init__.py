"""Results: the run-folder contract and everything that reads or reports it.

One owner per job (MONAI style), each module small:

* :mod:`.folders`: reading and writing ``metrics.json`` and run / job / sweep folders;
* :mod:`.job_record`: the job record every entry point writes, even on failure;
* :mod:`.papers`: a paper's reported numbers matched to a job;
* :mod:`.table`: the table model (sweep tables, seed groups, cell formatting);
* :mod:`.pooled`: a k-fold sweep's out-of-fold predictions pooled into one AUROC;
* :mod:`.paired`: a job against the best one on the same test images;
* renderers: :mod:`.console`, :mod:`.files` (results.csv / results.md), :mod:`.html_page`
  (shared page parts), :mod:`.html_run`, :mod:`.html_sweep`, :mod:`.charts`;
* :mod:`.sweep_report`: one call that writes a sweep's report with all of them.

The maths (the metric catalogue, AUROC, bootstrap, DeLong, McNemar, calibration) is
:mod:`fracture_lit.stats`, below this package. No module here imports an entry point; the
readers, tables and renderers import no torch (reports run in a sweep's launcher process),
and the bootstrap is imported only when a comparison or a pooled AUROC is computed.
Import the submodules directly; this file imports nothing.
"""
