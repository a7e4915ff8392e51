"""Converters, each checked against an independent computation: the authors' layout against a plain-torch
re-implementation of their ViT written here, VideoMAE against transformers' own VideoMAE."""

import json
import os

import pytest
import torch
import torch.nn.functional as F
from transformers import VideoMAEForPreTraining, VideoMAEForVideoClassification
from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table

from adamae_hf.convert import (
    ConversionError,
    convert_authors_checkpoint,
    convert_videomae_to_adamae,
    export_to_videomae,
    main,
)
from checkpoint_builders import (
    DECODER_DEPTH,
    DECODER_WIDTH,
    DEPTH,
    NUM_TOKENS,
    SAMPLER_HEADS,
    WIDTH,
    authors_finetuned_state_dict,
    authors_pretraining_state_dict,
    tiny_videomae_config,
)
from modeling_adamae import AdaMaeForPreTraining, AdaMaeForVideoClassification
from tiny_configs import tiny_config


# --- the authors' forward pass, written independently of modeling_adamae -------------------------------------------


def reference_block(x, state, prefix, heads, eps):
    width = x.shape[-1]
    h = F.layer_norm(x, (width,), state[f"{prefix}.norm1.weight"], state[f"{prefix}.norm1.bias"], eps)
    bias = None
    if f"{prefix}.attn.q_bias" in state:
        q_bias, v_bias = state[f"{prefix}.attn.q_bias"], state[f"{prefix}.attn.v_bias"]
        bias = torch.cat([q_bias, torch.zeros_like(v_bias), v_bias])
    batch, tokens, _ = x.shape
    qkv = F.linear(h, state[f"{prefix}.attn.qkv.weight"], bias).reshape(batch, tokens, 3, heads, -1)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    attention = ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
    out = (attention @ v).transpose(1, 2).reshape(batch, tokens, width)
    x = x + F.linear(out, state[f"{prefix}.attn.proj.weight"], state[f"{prefix}.attn.proj.bias"])
    h = F.layer_norm(x, (width,), state[f"{prefix}.norm2.weight"], state[f"{prefix}.norm2.bias"], eps)
    h = F.linear(F.gelu(F.linear(h, state[f"{prefix}.mlp.fc1.weight"], state[f"{prefix}.mlp.fc1.bias"])),
                 state[f"{prefix}.mlp.fc2.weight"], state[f"{prefix}.mlp.fc2.bias"])  # fmt: skip
    return x + h


def reference_patch_embed(video, state, prefix):
    weight, bias = state[f"{prefix}patch_embed.proj.weight"], state[f"{prefix}patch_embed.proj.bias"]
    return F.conv3d(video.permute(0, 2, 1, 3, 4), weight, bias, stride=(2, 8, 8)).flatten(2).transpose(1, 2)


def reference_pretraining_forward(video, state, mask):
    x = reference_patch_embed(video, state, "encoder.")
    s = x + state["encoder.pos_embed_probs"]
    s = reference_block(s, state, "encoder.get_token_probs.0", SAMPLER_HEADS, 1e-5)
    logits = F.linear(s, state["encoder.get_token_probs.1.weight"], state["encoder.get_token_probs.1.bias"])
    probs = logits.squeeze(-1).softmax(-1)
    x = x + get_sinusoid_encoding_table(NUM_TOKENS, WIDTH)
    batch = x.shape[0]
    x_vis = x[~mask].reshape(batch, -1, WIDTH)
    for i in range(DEPTH):
        x_vis = reference_block(x_vis, state, f"encoder.blocks.{i}", WIDTH // 64, 1e-6)
    x_vis = F.layer_norm(x_vis, (WIDTH,), state["encoder.norm.weight"], state["encoder.norm.bias"], 1e-6)
    x_vis = F.linear(x_vis, state["encoder_to_decoder.weight"])
    pos = get_sinusoid_encoding_table(NUM_TOKENS, DECODER_WIDTH).expand(batch, -1, -1)
    x_full = torch.cat(
        [x_vis + pos[~mask].reshape(batch, -1, DECODER_WIDTH),
         state["mask_token"] + pos[mask].reshape(batch, -1, DECODER_WIDTH)], dim=1,
    )  # fmt: skip
    for i in range(DECODER_DEPTH):
        x_full = reference_block(x_full, state, f"decoder.blocks.{i}", DECODER_WIDTH // 64, 1e-6)
    num_masked = int(mask[0].sum())
    out = F.layer_norm(x_full[:, -num_masked:], (DECODER_WIDTH,), state["decoder.norm.weight"],
                       state["decoder.norm.bias"], 1e-6)  # fmt: skip
    return F.linear(out, state["decoder.head.weight"], state["decoder.head.bias"]), probs


def reference_finetuned_forward(video, state):
    x = reference_patch_embed(video, state, "") + get_sinusoid_encoding_table(NUM_TOKENS, WIDTH)
    for i in range(DEPTH):
        x = reference_block(x, state, f"blocks.{i}", WIDTH // 64, 1e-6)
    pooled = F.layer_norm(x.mean(1), (WIDTH,), state["fc_norm.weight"], state["fc_norm.bias"], 1e-6)
    return F.linear(pooled, state["head.weight"], state["head.bias"])


def video(batch_size=2, seed=3):
    return torch.randn(batch_size, 8, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def sampled_mask(batch_size=2, num_visible=16, seed=4):
    generator = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch_size, NUM_TOKENS, dtype=torch.bool)
    for row in mask:
        row[torch.randperm(NUM_TOKENS, generator=generator)[:num_visible]] = False
    return mask


# --- 1. the authors' checkpoints -------------------------------------------------------------------------------------


def test_authors_pretraining_checkpoint_converts_exactly(tmp_path):
    state = authors_pretraining_state_dict()
    torch.save({"model": state}, tmp_path / "checkpoint.pth")
    model = convert_authors_checkpoint(
        tmp_path / "checkpoint.pth", tmp_path / "converted", num_frames=8, image_size=32, mask_ratio=0.75
    )
    assert isinstance(model, AdaMaeForPreTraining)
    config = model.config
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (WIDTH, 2, DEPTH)
    assert (config.decoder_hidden_size, config.decoder_num_attention_heads) == (DECODER_WIDTH, 1)
    assert (config.sampler_num_attention_heads, config.sampler_hidden_size) == (SAMPLER_HEADS, WIDTH)

    clip, mask = video(), sampled_mask()
    expected_logits, expected_probs = reference_pretraining_forward(clip, state, mask)
    reloaded = AdaMaeForPreTraining.from_pretrained(tmp_path / "converted").eval()
    for candidate in (model, reloaded):
        with torch.no_grad():
            outputs = candidate(clip, bool_masked_pos=mask)
        torch.testing.assert_close(outputs.logits, expected_logits, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(outputs.token_probs, expected_probs, rtol=1e-4, atol=1e-7)


def test_authors_finetuned_checkpoint_converts_exactly(tmp_path):
    state = authors_finetuned_state_dict(num_classes=5)
    torch.save({"module": state}, tmp_path / "finetuned.pth")
    id2label = {i: f"class_{i}" for i in range(5)}
    model = convert_authors_checkpoint(
        tmp_path / "finetuned.pth", tmp_path / "converted", num_frames=8, image_size=32, id2label=id2label
    )
    assert isinstance(model, AdaMaeForVideoClassification)
    assert model.config.use_mean_pooling and model.config.num_labels == 5
    assert model.config.id2label[3] == "class_3"
    clip = video()
    with torch.no_grad():
        torch.testing.assert_close(model(clip).logits, reference_finetuned_forward(clip, state), rtol=1e-4, atol=1e-5)


def test_unknown_and_missing_keys_are_errors_listing_them(tmp_path):
    state = authors_pretraining_state_dict()
    state["encoder.some_new_thing"] = torch.zeros(3)
    del state["decoder.norm.bias"]
    torch.save({"model": state}, tmp_path / "bad.pth")
    with pytest.raises(ConversionError) as error:
        convert_authors_checkpoint(tmp_path / "bad.pth", num_frames=8, image_size=32)
    assert "encoder.some_new_thing" in str(error.value)
    assert "decoder.norm.bias" in str(error.value)


def test_wrong_frame_count_is_an_error_naming_it(tmp_path):
    torch.save({"model": authors_pretraining_state_dict()}, tmp_path / "checkpoint.pth")
    with pytest.raises(ConversionError, match="num_frames"):
        convert_authors_checkpoint(tmp_path / "checkpoint.pth", num_frames=16, image_size=32)


class ArbitraryCode:
    """Unpickling this would run a shell command: the converter must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoints_are_never_unpickled_beyond_tensors(tmp_path):
    marker = tmp_path / "code_ran"
    torch.save({"model": authors_pretraining_state_dict(), "extra": ArbitraryCode(marker)}, tmp_path / "evil.pth")
    with pytest.raises(Exception, match="(?i)weights.only|unpickl|unsupported"):
        convert_authors_checkpoint(tmp_path / "evil.pth", num_frames=8, image_size=32)
    assert not marker.exists()


def test_command_line_converts_with_progress(tmp_path, capsys):
    torch.save({"model": authors_pretraining_state_dict()}, tmp_path / "checkpoint.pth")
    exit_code = main(["authors", str(tmp_path / "checkpoint.pth"), str(tmp_path / "out"), "--num_frames", "8",
                      "--image_size", "32", "--mask_ratio", "0.75"])  # fmt: skip
    assert exit_code == 0
    assert "[4/4] Saved" in capsys.readouterr().err
    assert AdaMaeForPreTraining.from_pretrained(tmp_path / "out").config.mask_ratio == 0.75

    (tmp_path / "labels.json").write_text(json.dumps({str(i): f"c{i}" for i in range(5)}))
    torch.save({"model": authors_finetuned_state_dict()}, tmp_path / "finetuned.pth")
    main(["authors", str(tmp_path / "finetuned.pth"), str(tmp_path / "cls"), "--num_frames", "8", "--image_size", "32",
          "--id2label", str(tmp_path / "labels.json")])  # fmt: skip
    assert AdaMaeForVideoClassification.from_pretrained(tmp_path / "cls").config.id2label[4] == "c4"


# --- 2. VideoMAE -> AdaMAE -------------------------------------------------------------------------------------------


def test_videomae_pretraining_folder_converts_with_a_new_sampler(tmp_path):
    torch.manual_seed(0)
    videomae = VideoMAEForPreTraining(tiny_videomae_config(use_mean_pooling=False)).eval()
    videomae.save_pretrained(tmp_path / "videomae")
    model = convert_videomae_to_adamae(tmp_path / "videomae", tmp_path / "adamae", mask_ratio=0.75)
    assert model.sampler is not None and model.config.mask_type == "adaptive"
    torch.testing.assert_close(model.sampler.position_embeddings, torch.zeros_like(model.sampler.position_embeddings))

    clip, mask = video(), sampled_mask()
    with torch.no_grad():
        expected = videomae(clip, bool_masked_pos=mask)
        ours = AdaMaeForPreTraining.from_pretrained(tmp_path / "adamae").eval()(clip, bool_masked_pos=mask)
    torch.testing.assert_close(ours.logits, expected.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.reconstruction_loss, expected.loss, rtol=1e-4, atol=1e-6)


def test_videomae_encoder_folder_converts_with_a_new_decoder(tmp_path):
    from transformers import VideoMAEModel

    VideoMAEModel(tiny_videomae_config(use_mean_pooling=False)).save_pretrained(tmp_path / "encoder")
    model = convert_videomae_to_adamae(tmp_path / "encoder", mask_ratio=0.75)
    encoder = VideoMAEModel.from_pretrained(tmp_path / "encoder").eval()
    with torch.no_grad():
        torch.testing.assert_close(model.videomae(video()).last_hidden_state, encoder(video()).last_hidden_state)


# --- 3. AdaMAE -> stock VideoMAE -------------------------------------------------------------------------------------


def test_export_to_videomae_gives_equal_logits_without_remote_code(tmp_path):
    torch.manual_seed(0)
    model = AdaMaeForVideoClassification(tiny_config(num_labels=4, id2label={i: f"l{i}" for i in range(4)})).eval()
    torch.nn.init.normal_(model.classifier.weight, std=0.5)  # a head that has been trained
    model.save_pretrained(tmp_path / "adamae")
    assert main(["to-videomae", str(tmp_path / "adamae"), str(tmp_path / "videomae")]) == 0

    saved = json.loads((tmp_path / "videomae" / "config.json").read_text())
    assert saved["model_type"] == "videomae" and "auto_map" not in saved
    assert not any(name.endswith(".py") for name in os.listdir(tmp_path / "videomae"))
    stock = VideoMAEForVideoClassification.from_pretrained(tmp_path / "videomae").eval()
    assert stock.config.id2label[2] == "l2"
    clip = video()
    with torch.no_grad():
        # fc_norm eps: 1e-5 in stock VideoMAE vs 1e-6 here, hence the tolerance
        torch.testing.assert_close(stock(clip).logits, model(clip).logits, rtol=1e-4, atol=1e-5)

    mean_free = AdaMaeForVideoClassification(tiny_config(num_labels=2, use_mean_pooling=False)).eval()
    exported = export_to_videomae(mean_free)
    with torch.no_grad():
        torch.testing.assert_close(exported(clip).logits, mean_free(clip).logits, rtol=0, atol=1e-6)
