import math

import numpy as np
import pytest
import torch
from tiny_configs import tiny_config

from adamae_hf.optim import build_adamw, parameter_groups, scaled_learning_rate, warmup_cosine_schedule
from modeling_adamae import AdaMaeForPreTraining, AdaMaeForVideoClassification


def test_weight_decay_spares_biases_norms_position_tables_and_the_mask_token():
    model = AdaMaeForPreTraining(tiny_config())
    decay = {name: group["weight_decay"] for group in parameter_groups(model, 0.05) for name in group["names"]}
    assert decay.keys() == {name for name, _ in model.named_parameters()}
    for name in (
        "mask_token",
        "sampler.position_embeddings",
        "videomae.encoder.layer.0.attention.attention.query.bias",
        "videomae.layernorm.weight",
        "decoder.norm.bias",
        "sampler.head.bias",
    ):
        assert decay[name] == 0.0, name
    for name in (
        "videomae.encoder.layer.0.attention.attention.key.weight",
        "encoder_to_decoder.weight",
        "videomae.embeddings.patch_embeddings.projection.weight",
        "sampler.head.weight",
    ):
        assert decay[name] == 0.05, name


def test_layer_wise_lr_decay_scales_each_group_by_depth():
    model = AdaMaeForVideoClassification(tiny_config(num_labels=3))  # 2 layers: ids 0 (embeddings) .. 3 (head)
    base, decay = 1e-3, 0.75
    optimizer = build_adamw(model, lr=base, weight_decay=0.05, betas=(0.9, 0.999), layer_decay=decay)
    names = dict(zip((id(p) for p in model.parameters()), (n for n, _ in model.named_parameters())))
    expected_layer = {
        "videomae.embeddings": 0,
        "videomae.encoder.layer.0": 1,
        "videomae.encoder.layer.1": 2,
        "fc_norm": 3,
        "classifier": 3,
    }
    seen = set()
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            name = names[id(parameter)]
            layer_id = next(v for k, v in expected_layer.items() if name.startswith(k))
            assert group["lr"] == pytest.approx(base * decay ** (3 - layer_id)), name
            seen.add(name)
    assert seen == set(names.values())
    assert optimizer.param_groups[0]["lr"] == pytest.approx(base * decay**3)  # the embeddings first
    head_first = build_adamw(model, lr=base, weight_decay=0.05, betas=(0.9, 0.999), layer_decay=decay, head_first=True)
    assert [group["lr"] for group in head_first.param_groups] == [group["lr"] for group in optimizer.param_groups][
        ::-1
    ]
    assert head_first.param_groups[0]["lr"] == base  # what Trainer logs: the undecayed schedule


def test_scaled_learning_rate():
    assert scaled_learning_rate(1.5e-4, 2048) == pytest.approx(1.2e-3)


def reference_cosine_scheduler(base_value, final_value, total_steps, warmup_steps, start_warmup_value):
    """The reference implementation's per-step schedule (numpy), written out."""
    warmup = np.linspace(start_warmup_value, base_value, warmup_steps)
    iters = np.arange(total_steps - warmup_steps)
    schedule = np.array(
        [final_value + 0.5 * (base_value - final_value) * (1 + math.cos(math.pi * i / len(iters))) for i in iters]
    )
    return np.concatenate((warmup, schedule))


def test_warmup_cosine_matches_the_reference_schedule():
    model = torch.nn.Linear(2, 2)
    base, total, warmup = 6e-4, 50, 10
    optimizer = torch.optim.AdamW(model.parameters(), lr=base)
    scheduler = warmup_cosine_schedule(optimizer, warmup, total, base, warmup_lr=1e-6, min_lr=1e-5)
    observed = []
    for _ in range(total):
        observed.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(observed, reference_cosine_scheduler(base, 1e-5, total, warmup, 1e-6), rtol=1e-9)
