"""The LightningModule, the timm backbones and checkpoint loading."""

from fracture_lit.utils.import_guard import import_without

# timm imports wandb at load time for a logging helper fracture_lit never calls (~1 s of
# every start); the W&B logger imports wandb itself when a run uses it.
import_without("timm", "wandb")
