"""fracture_lit: bone-fracture classifiers on X-ray images with Lightning + Hydra."""

__version__ = "0.1.0"
