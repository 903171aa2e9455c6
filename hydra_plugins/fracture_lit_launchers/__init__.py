"""fracture_lit's Hydra launcher plugin (Hydra only loads launchers from ``hydra_plugins``)."""
