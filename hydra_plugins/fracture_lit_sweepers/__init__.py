"""fracture_lit's Hydra sweeper plugin (Hydra only loads sweepers from ``hydra_plugins``)."""
