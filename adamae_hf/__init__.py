"""adamae-hf: AdaMAE (adaptive token sampling for video masked autoencoders, CVPR 2023) for the HuggingFace stack.

Importing the package registers the AdaMAE classes with transformers' Auto classes, so that
`AutoModelForPreTraining.from_pretrained(folder)` works without `trust_remote_code` where adamae-hf is installed.
"""

# First: importing the configuration checks the transformers version (one clear ImportError naming the minimum).
from transformers import (  # noqa: E402
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForVideoClassification,
)

from configuration_adamae import MIN_TRANSFORMERS_VERSION, AdaMaeConfig
from modeling_adamae import (  # noqa: E402
    AdaMaeForPreTraining,
    AdaMaeForPreTrainingOutput,
    AdaMaeForVideoClassification,
    AdaMaeModel,
    AdaMaePreTrainedModel,
)

from .convert import convert_authors_checkpoint, convert_videomae_to_adamae, export_to_videomae  # noqa: E402


AutoConfig.register(AdaMaeConfig.model_type, AdaMaeConfig, exist_ok=True)
AutoModel.register(AdaMaeConfig, AdaMaeModel, exist_ok=True)
AutoModelForPreTraining.register(AdaMaeConfig, AdaMaeForPreTraining, exist_ok=True)
AutoModelForVideoClassification.register(AdaMaeConfig, AdaMaeForVideoClassification, exist_ok=True)

__version__ = "0.1.0"

__all__ = [
    "AdaMaeConfig",
    "AdaMaeForPreTraining",
    "AdaMaeForPreTrainingOutput",
    "AdaMaeForVideoClassification",
    "AdaMaeModel",
    "AdaMaePreTrainedModel",
    "MIN_TRANSFORMERS_VERSION",
    "convert_authors_checkpoint",
    "convert_videomae_to_adamae",
    "export_to_videomae",
]
