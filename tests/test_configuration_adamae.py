import pytest
from tiny_configs import tiny_config

from configuration_adamae import AdaMaeConfig


def test_defaults_are_the_papers_vit_b_setting():
    config = AdaMaeConfig()
    assert config.token_grid == (8, 14, 14)
    assert config.num_patches == 1568
    assert config.patch_dim == 1536
    # int(1568 * (1 - 0.95)) = 78 in float arithmetic
    assert config.get_num_visible_tokens() == 78
    assert (config.mask_type, config.mask_ratio, config.sampling_loss_weight) == ("adaptive", 0.95, 1e-4)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert (config.decoder_hidden_size, config.decoder_num_hidden_layers, config.decoder_num_attention_heads) == (
        384,
        4,
        6,
    )
    assert config.layer_norm_eps == 1e-6 and config.qkv_bias and config.norm_pix_loss and config.use_mean_pooling
    assert (config.sampler_hidden_size, config.sampler_num_attention_heads, config.sampler_intermediate_size) == (
        768,
        8,
        3072,
    )
    assert (config.sampler_dropout_prob, config.sampler_layer_norm_eps, config.sampler_num_hidden_layers) == (
        0.1,
        1e-5,
        1,
    )
    assert config.image_mean == [0.485, 0.456, 0.406] and config.image_std == [0.229, 0.224, 0.225]  # ImageNet
    # transformers' VideoMAE layers read `qv_bias`
    assert config.qv_bias is True


@pytest.mark.parametrize(
    "mask_type, mask_ratio, visible",
    [
        ("adaptive", 0.95, 78),
        ("tube", 0.9, 8 * 20),  # VideoMAE masks int(0.9 * 196) = 176 patches per slice
        ("tube", 0.75, 8 * 49),
        ("random", 0.9, 1568 - 1411),
        ("frame", 0.875, 196),  # 7 of 8 slices masked
    ],
)
def test_visible_token_count_rounds_like_each_reference(mask_type, mask_ratio, visible):
    config = AdaMaeConfig(mask_type=mask_type, mask_ratio=mask_ratio)
    assert config.get_num_visible_tokens() == visible


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(mask_type="checkerboard"), "mask_type"),
        (dict(mask_ratio=1.0), "mask_ratio"),
        (dict(mask_ratio=0.0), "mask_ratio"),
        (dict(mask_ratio=0.99), "visible"),  # adaptive: int(64 * 0.01) = 0 visible tokens
        (dict(mask_type="random", mask_ratio=0.01), "masked"),  # int(0.01 * 64) = 0 masked tokens
        (dict(mask_type="frame", mask_ratio=0.2), "masked"),  # int(0.2 * 4) = 0 of 4 slices masked
        (dict(image_size=36), "patch_size"),
        (dict(image_size=[32, 36]), "patch_size"),
        (dict(num_frames=7), "tubelet_size"),
        (dict(hidden_size=33), "num_attention_heads"),
        (dict(decoder_hidden_size=15), "decoder_num_attention_heads"),
        (dict(sampler_num_attention_heads=3), "sampler_num_attention_heads"),
        (dict(num_hidden_layers=0), "num_hidden_layers"),
        (dict(drop_path_rate=1.5), "drop_path_rate"),
        (dict(image_mean=[0.5, 0.5]), "image_mean must have one value per channel"),
        (dict(image_std=[0.2, 0.0, 0.2]), "image_std must be positive"),
    ],
)
def test_invalid_configurations_raise_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        tiny_config(**overrides)


def test_error_message_states_the_allowed_range():
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        tiny_config(mask_ratio=1.2)
    with pytest.raises(ValueError, match=r"1 <= visible tokens <= 63"):
        tiny_config(mask_ratio=0.99)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(image_size=10**9), r"image_size height must be at most 4096 pixels, got 1000000000"),
        (dict(image_size=[32, 8192]), r"image_size width must be at most 4096 pixels, got 8192"),
        (dict(num_frames=2**14), r"num_frames=16384, image_size=32 give 131072 tokens .* at most 65536"),
        (dict(image_size=4096), r"give 1048576 tokens"),
    ],
)
def test_absurd_sizes_are_refused_naming_the_field_the_value_and_the_limit(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_largest_supported_sizes_are_accepted():
    # 64 frames of 512 x 512 in 16 x 16 patches: 32768 tokens; 4096-pixel frames with 64-pixel patches
    assert AdaMaeConfig(num_frames=64, image_size=512).num_patches == 32768
    assert AdaMaeConfig(image_size=4096, patch_size=64).num_patches == 8 * 64 * 64


def test_json_round_trip(tmp_path):
    config = tiny_config(mask_type="tube", mask_ratio=0.5, image_size=[32, 48], sampler_hidden_size=16)
    config.save_pretrained(tmp_path)
    loaded = AdaMaeConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.frame_size == (32, 48) and loaded.num_patches == 4 * 4 * 6
    assert loaded.sampler_intermediate_size == 64


def test_qv_bias_is_also_read_and_written_by_its_old_name(tmp_path):
    config = tiny_config(qkv_bias=False)  # the name configs saved before the rename carry
    assert config.qv_bias is False and config.qkv_bias is False
    saved = config.to_dict()
    assert saved["qv_bias"] is False and "qkv_bias" not in saved
    config.qkv_bias = True
    assert config.qv_bias is True
    (tmp_path / "config.json").write_text(config.to_json_string().replace('"qv_bias": true', '"qkv_bias": false'))
    assert AdaMaeConfig.from_pretrained(tmp_path).qv_bias is False


def test_every_config_maps_every_auto_class_unless_it_brings_its_own_map():
    auto_map = tiny_config().auto_map
    assert auto_map["AutoConfig"] == "configuration_adamae.AdaMaeConfig"
    assert auto_map["AutoModelForVideoClassification"] == "modeling_adamae.AdaMaeForVideoClassification"
    assert set(auto_map) == {"AutoConfig", "AutoModel", "AutoModelForPreTraining", "AutoModelForVideoClassification"}
    hub_map = {"AutoConfig": "someone/adamae--configuration_adamae.AdaMaeConfig"}
    assert tiny_config(auto_map=hub_map).auto_map == hub_map
    tiny_config().auto_map["AutoModel"] = "changed"
    assert tiny_config().auto_map["AutoModel"] == "modeling_adamae.AdaMaeModel"  # each config has its own copy
