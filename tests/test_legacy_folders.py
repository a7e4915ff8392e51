"""Folders saved by the model code before its rebuild on transformers' own plumbing (issue 13) still load, with no
weight dropped or re-initialised, and give the outputs that code gave. The folders and outputs are fixtures written
by tests/fixtures/make_legacy_folders.py at that commit."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from modeling_adamae import AdaMaeForPreTraining, AdaMaeForVideoClassification, AdaMaeModel


LEGACY = Path(__file__).parent / "fixtures" / "legacy"
TOLERANCE = dict(rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def expected():
    return load_file(LEGACY / "expected_outputs.safetensors")


def load_exactly(model_class, folder):
    """`from_pretrained` that fails unless every saved tensor is used and every model tensor is loaded."""
    model, info = model_class.from_pretrained(LEGACY / folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


def assert_outputs(actual: dict, expected: dict, prefix: str):
    for name, value in actual.items():
        torch.testing.assert_close(value, expected[f"{prefix}.{name}"], **TOLERANCE, msg=f"{prefix}.{name}")


@torch.no_grad()
def test_legacy_pretraining_folder_gives_the_same_outputs(expected):
    model = load_exactly(AdaMaeForPreTraining, "pretraining")
    video = expected["pixel_values"]
    outputs = model(video, noise=expected["noise"], output_hidden_states=True)
    assert torch.equal(outputs.mask, expected["pretraining.mask"])
    assert_outputs(
        {
            "loss": outputs.loss,
            "reconstruction_loss": outputs.reconstruction_loss,
            "sampling_loss": outputs.sampling_loss,
            "logits": outputs.logits,
            "token_probs": outputs.token_probs,
            "hidden_states": torch.stack(outputs.hidden_states),
            "targets": model.compute_targets(video),
        },
        expected,
        "pretraining",
    )
    given = model(video, bool_masked_pos=expected["given_mask"])
    assert_outputs({"loss": given.loss, "logits": given.logits}, expected, "pretraining_given_mask")


@torch.no_grad()
def test_legacy_classifier_folder_gives_the_same_outputs_and_keeps_its_labels(expected):
    model = load_exactly(AdaMaeForVideoClassification, "classifier")
    # The folder's config.json spells the q/v bias flag by its old name, `qkv_bias`.
    assert model.config.qv_bias is False
    assert not any(key.endswith(("query.bias", "value.bias")) for key in model.state_dict())
    assert model.config.id2label == {0: "left", 1: "right", 2: "still"} and model.config.label2id["still"] == 2
    outputs = model(expected["pixel_values"], labels=expected["labels"], output_hidden_states=True)
    assert_outputs(
        {"loss": outputs.loss, "logits": outputs.logits, "hidden_states": torch.stack(outputs.hidden_states)},
        expected,
        "classifier",
    )


@torch.no_grad()
def test_legacy_pretraining_folder_loads_as_a_base_model(expected):
    model, info = AdaMaeModel.from_pretrained(LEGACY / "pretraining", output_loading_info=True)
    assert not info["missing_keys"]
    encoded = model.eval()(expected["pixel_values"]).last_hidden_state
    torch.testing.assert_close(encoded, expected["base_model_from_pretraining.last_hidden_state"], **TOLERANCE)
