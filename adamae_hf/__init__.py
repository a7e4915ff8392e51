"""adamae-hf: AdaMAE for the HuggingFace stack."""
