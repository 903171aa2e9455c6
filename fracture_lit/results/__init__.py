"""Results of runs and sweeps: metric catalogue, run-folder reader, tables, statistics."""
