"""Pain models: ViTPain and two baselines, built by name through a registry."""

# Importing the model files registers them.
from trainer.models import vit, vit_diff, vitpain  # noqa: F401,E402
from trainer.models.backbone import BackboneConfig, create_backbone
from trainer.models.heads import LossWeights, pain_loss
from trainer.models.registry import create_model, is_backbone_parameter, list_models

__all__ = ["BackboneConfig", "LossWeights", "create_backbone", "create_model", "is_backbone_parameter", "list_models", "pain_loss"]
