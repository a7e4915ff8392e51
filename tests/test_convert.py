"""Converters, each checked against an independent computation: the authors' layout against a plain-torch
re-implementation of their ViT written here, VideoMAE against transformers' own VideoMAE."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from checkpoint_builders import (
    DECODER_DEPTH,
    DECODER_HEADS,
    DECODER_WIDTH,
    DEPTH,
    HEADS,
    NUM_TOKENS,
    SAMPLER_HEADS,
    WIDTH,
    authors_finetuned_state_dict,
    authors_pretraining_state_dict,
    save_authors_checkpoint,
    tiny_videomae_config,
)
from tiny_configs import tiny_config
from transformers import VideoMAEForPreTraining, VideoMAEForVideoClassification
from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table

from adamae_hf.convert import (
    ConversionError,
    convert_authors_checkpoint,
    convert_videomae_to_adamae,
    export_to_videomae,
    main,
    resolve_attention_heads,
)
from modeling_adamae import AdaMaeForPreTraining, AdaMaeForVideoClassification


TINY_CLIP_FLAGS = ["--num_frames", "8", "--image_size", "32"]  # the clip of checkpoint_builders' tiny checkpoints


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
    h = F.linear(
        F.gelu(F.linear(h, state[f"{prefix}.mlp.fc1.weight"], state[f"{prefix}.mlp.fc1.bias"])),
        state[f"{prefix}.mlp.fc2.weight"],
        state[f"{prefix}.mlp.fc2.bias"],
    )
    return x + h


def reference_patch_embed(video, state, prefix):
    weight, bias = state[f"{prefix}patch_embed.proj.weight"], state[f"{prefix}patch_embed.proj.bias"]
    return F.conv3d(video.permute(0, 2, 1, 3, 4), weight, bias, stride=(2, 8, 8)).flatten(2).transpose(1, 2)


def reference_pretraining_forward(video, state, mask, heads=HEADS, decoder_heads=DECODER_HEADS):
    x = reference_patch_embed(video, state, "encoder.")
    width, decoder_width = x.shape[-1], state["encoder_to_decoder.weight"].shape[0]
    s = x + state["encoder.pos_embed_probs"]
    s = reference_block(s, state, "encoder.get_token_probs.0", SAMPLER_HEADS, 1e-5)
    logits = F.linear(s, state["encoder.get_token_probs.1.weight"], state["encoder.get_token_probs.1.bias"])
    probs = logits.squeeze(-1).softmax(-1)
    x = x + get_sinusoid_encoding_table(NUM_TOKENS, width)
    batch = x.shape[0]
    x_vis = x[~mask].reshape(batch, -1, width)
    for i in range(DEPTH):
        x_vis = reference_block(x_vis, state, f"encoder.blocks.{i}", heads, 1e-6)
    x_vis = F.layer_norm(x_vis, (width,), state["encoder.norm.weight"], state["encoder.norm.bias"], 1e-6)
    x_vis = F.linear(x_vis, state["encoder_to_decoder.weight"])
    pos = get_sinusoid_encoding_table(NUM_TOKENS, decoder_width).expand(batch, -1, -1)
    x_full = torch.cat(
        [
            x_vis + pos[~mask].reshape(batch, -1, decoder_width),
            state["mask_token"] + pos[mask].reshape(batch, -1, decoder_width),
        ],
        dim=1,
    )
    for i in range(DECODER_DEPTH):
        x_full = reference_block(x_full, state, f"decoder.blocks.{i}", decoder_heads, 1e-6)
    num_masked = int(mask[0].sum())
    out = F.layer_norm(
        x_full[:, -num_masked:], (decoder_width,), state["decoder.norm.weight"], state["decoder.norm.bias"], 1e-6
    )
    return F.linear(out, state["decoder.head.weight"], state["decoder.head.bias"]), probs


def reference_finetuned_forward(video, state):
    x = reference_patch_embed(video, state, "") + get_sinusoid_encoding_table(NUM_TOKENS, WIDTH)
    for i in range(DEPTH):
        x = reference_block(x, state, f"blocks.{i}", HEADS, 1e-6)
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
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (WIDTH, HEADS, DEPTH)
    assert (config.decoder_hidden_size, config.decoder_num_attention_heads) == (DECODER_WIDTH, DECODER_HEADS)
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


# --- head counts: saved training arguments, standard widths, or the command line ------------------------------------


def test_head_counts_of_the_standard_vit_widths():
    # ViT-Ti/S/B/L/H and the MAE decoders; ViT-H has 16 heads of 80, not 1280 / 64 = 20
    widths = (192, 384, 512, 768, 1024, 1280)
    assert [resolve_attention_heads(width, "encoder", "--x") for width in widths] == [3, 6, 8, 12, 16, 16]
    with pytest.raises(ConversionError, match=r"encoder is 200 wide, not a standard ViT width .* pass --x"):
        resolve_attention_heads(200, "encoder", "--x")
    assert resolve_attention_heads(640, "decoder", "--x") == 8  # the ViT-H decoder: 8 heads of 80, not 640 / 64


def test_non_standard_width_without_training_arguments_requires_the_head_count(tmp_path, capsys):
    state = authors_pretraining_state_dict(width=128, decoder_width=64)
    save_authors_checkpoint(tmp_path / "custom.pth", state)
    with pytest.raises(ConversionError, match=r"encoder is 128 wide, not a standard ViT width.*--num_attention_heads"):
        convert_authors_checkpoint(tmp_path / "custom.pth", num_frames=8, image_size=32)
    with pytest.raises(ConversionError, match=r"decoder is 64 wide.*--decoder_num_attention_heads"):
        convert_authors_checkpoint(tmp_path / "custom.pth", num_frames=8, image_size=32, num_attention_heads=4)

    files = [str(tmp_path / "custom.pth"), str(tmp_path / "out")]
    arguments = ["authors", *files, *TINY_CLIP_FLAGS, "--mask_ratio", "0.75"]
    assert main(arguments) == 1
    assert_one_line_error(capsys, "error: The checkpoint's encoder is 128 wide")

    # told on the command line, the conversion is exact for that head count
    assert main(arguments + ["--num_attention_heads", "4", "--decoder_num_attention_heads", "2"]) == 0
    model = AdaMaeForPreTraining.from_pretrained(tmp_path / "out").eval()
    assert (model.config.num_attention_heads, model.config.decoder_num_attention_heads) == (4, 2)
    clip, mask = video(), sampled_mask()
    expected, _ = reference_pretraining_forward(clip, state, mask, heads=4, decoder_heads=2)
    with torch.no_grad():
        torch.testing.assert_close(model(clip, bool_masked_pos=mask).logits, expected, rtol=1e-4, atol=1e-5)


def test_head_counts_and_clip_come_from_the_saved_training_arguments(tmp_path):
    state = authors_pretraining_state_dict(width=128, decoder_width=64)
    save_authors_checkpoint(
        tmp_path / "checkpoint.pth",
        state,
        model="pretrain_custom_patch8_32",
        num_heads=4,
        decoder_num_heads=2,
        num_frames=8,
        input_size=32,
        mask_ratio=0.75,
        sampling_rate=2,
        window_size=(4, 4, 4),
        device="cuda",
    )
    model = convert_authors_checkpoint(tmp_path / "checkpoint.pth", tmp_path / "out")
    config = model.config
    assert (config.num_attention_heads, config.decoder_num_attention_heads) == (4, 2)
    assert (config.num_frames, config.image_size, config.mask_ratio) == (8, 32, 0.75)
    clip, mask = video(), sampled_mask()
    expected, _ = reference_pretraining_forward(clip, state, mask, heads=4, decoder_heads=2)
    wrong, _ = reference_pretraining_forward(clip, state, mask, heads=2, decoder_heads=1)  # width / 64
    with torch.no_grad():
        logits = model(clip, bool_masked_pos=mask).logits
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)
    assert (logits - wrong).abs().max() > 1e-2  # the head count matters: width / 64 would predict otherwise
    clip_config = json.loads((tmp_path / "out" / "clip_config.json").read_text())
    assert (clip_config["num_frames"], clip_config["crop_size"], clip_config["sampling_rate"]) == (8, 32, 2)


def test_model_name_in_the_training_arguments_must_match_the_width(tmp_path):
    base = "pretrain_videomae_base_patch16_224"
    save_authors_checkpoint(tmp_path / "base.pth", authors_pretraining_state_dict(), model=base)
    with pytest.raises(ConversionError, match=r"'pretrain_videomae_base_patch16_224' \(base: width 768, 12 heads\)"):
        convert_authors_checkpoint(tmp_path / "base.pth", num_frames=8, image_size=32)
    save_authors_checkpoint(tmp_path / "tiny.pth", authors_pretraining_state_dict(), model="pretrain_vit_tiny_patch8")
    model = convert_authors_checkpoint(tmp_path / "tiny.pth", num_frames=8, image_size=32)
    assert model.config.num_attention_heads == 3


# --- files that are not plain weights --------------------------------------------------------------------------------


class ArbitraryCode:
    """Unpickling this would run a shell command: the converter must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoints_are_never_unpickled_beyond_tensors(tmp_path, capsys):
    marker = tmp_path / "code_ran"
    torch.save({"model": authors_pretraining_state_dict(), "extra": ArbitraryCode(marker)}, tmp_path / "evil.pth")
    with pytest.raises(ConversionError) as error:
        convert_authors_checkpoint(tmp_path / "evil.pth", num_frames=8, image_size=32)
    message = str(error.value)
    refused = "holds objects other than tensors (posix.system) and is refused"
    assert message.startswith(f"{tmp_path / 'evil.pth'} {refused}")
    assert "weights_only=False" not in message and "\n" not in message
    assert not marker.exists()

    torch.save({"model": authors_pretraining_state_dict(), "epoch": np.int64(3)}, tmp_path / "numpy.pth")
    assert main(["authors", str(tmp_path / "numpy.pth"), str(tmp_path / "out")]) == 1
    line = assert_one_line_error(capsys, "numpy.pth holds objects other than tensors (numpy")
    assert "weights_only" not in line


def assert_one_line_error(capsys, expected: str):
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and expected in lines[-1], err
    return lines[-1]


def test_command_line_mistakes_end_with_one_line(tmp_path, capsys):
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    labels = tmp_path / "labels.json"
    labels.write_text("[1, 2]")
    torch.save({"model": authors_finetuned_state_dict()}, tmp_path / "finetuned.pth")
    out = str(tmp_path / "out")
    cases = [
        (["authors", str(tmp_path / "missing.pth"), out], "missing.pth': no such file."),
        (["authors", str(tmp_path / "notes.pth"), out], "notes.pth is not a PyTorch checkpoint"),
        (
            ["authors", str(tmp_path / "finetuned.pth"), out, *TINY_CLIP_FLAGS, "--id2label", str(labels)],
            "expected a JSON object mapping class ids to names",
        ),
        (["videomae", str(tmp_path / "no" / "such" / "folder"), out], "no such folder"),
        (["to-videomae", str(tmp_path / "no" / "such" / "folder"), out], "no such folder"),
        (["to-videomae", str(tmp_path), out], "config.json"),
    ]
    for argv, expected in cases:
        assert main(argv) == 1, argv
        assert_one_line_error(capsys, expected)

    # the installed command: exit status 1 and one line
    command = [sys.executable, "-c", "import sys; from adamae_hf.convert import main; sys.exit(main())"]
    result = subprocess.run(
        command + ["authors", str(tmp_path / "missing.pth"), out], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        f"error: CHECKPOINT: expected an authors' .pth file, got '{tmp_path / 'missing.pth'}': no such file."
    ], result.stderr

    # --debug adds the traceback
    assert main(["authors", str(tmp_path / "notes.pth"), out, "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err

    # wrong flags: argparse's usage line and one error line, exit status 2
    with pytest.raises(SystemExit) as exit_info:
        main(["authors", str(tmp_path / "finetuned.pth"), out, "--num_frames", "many"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "argument --num_frames: invalid int value: 'many'" in err.strip().splitlines()[-1]


def test_command_line_converts_with_progress(tmp_path, capsys):
    torch.save({"model": authors_pretraining_state_dict()}, tmp_path / "checkpoint.pth")
    exit_code = main(
        ["authors", str(tmp_path / "checkpoint.pth"), str(tmp_path / "out"), *TINY_CLIP_FLAGS, "--mask_ratio", "0.75"]
    )
    assert exit_code == 0
    assert "[4/4] Saved" in capsys.readouterr().err
    assert AdaMaeForPreTraining.from_pretrained(tmp_path / "out").config.mask_ratio == 0.75

    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({str(i): f"c{i}" for i in range(5)}))
    torch.save({"model": authors_finetuned_state_dict()}, tmp_path / "finetuned.pth")
    files = [str(tmp_path / "finetuned.pth"), str(tmp_path / "cls")]
    main(["authors", *files, *TINY_CLIP_FLAGS, "--id2label", str(labels)])
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


# --- every converted folder is inference-ready ----------------------------------------------------------------------


def assert_inference_files(folder, num_frames=8, crop_size=32, sampling_rate=4):
    clip = json.loads((folder / "clip_config.json").read_text())
    assert (clip["num_frames"], clip["crop_size"], clip["sampling_rate"]) == (num_frames, crop_size, sampling_rate)
    for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
        processor = json.loads((folder / name).read_text())
        assert processor["crop_size"] == {"height": crop_size, "width": crop_size}, name
        assert processor["image_mean"] == pytest.approx([0.485, 0.456, 0.406]), name


def test_every_converter_writes_the_video_processor_for_its_clip(tmp_path):
    save_authors_checkpoint(
        tmp_path / "finetuned.pth",
        authors_finetuned_state_dict(),
        model="vit_tiny_patch8_32",
        num_frames=8,
        input_size=32,
        sampling_rate=2,
        test_num_segment=2,
        test_num_crop=3,
        data_set="SSV2",
    )
    convert_authors_checkpoint(tmp_path / "finetuned.pth", tmp_path / "authors")
    assert_inference_files(tmp_path / "authors", sampling_rate=2)
    clip = json.loads((tmp_path / "authors" / "clip_config.json").read_text())
    assert (clip["num_clips"], clip["num_crops"], clip["sampling_mode"]) == (2, 3, "segment")  # the authors' test

    VideoMAEForPreTraining(tiny_videomae_config()).save_pretrained(tmp_path / "videomae")
    convert_videomae_to_adamae(tmp_path / "videomae", tmp_path / "from_videomae", mask_ratio=0.75)
    assert_inference_files(tmp_path / "from_videomae")

    export_to_videomae(tmp_path / "authors", tmp_path / "stock")
    assert_inference_files(tmp_path / "stock", sampling_rate=2)  # the source folder's clip
    assert not any(name.endswith(".py") for name in os.listdir(tmp_path / "stock"))  # still no remote code
