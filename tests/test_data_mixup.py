"""adamae_hf.data.mixup: mixup / cutmix and label smoothing as soft targets."""

import torch
import torch.nn.functional as F

from adamae_hf.data.mixup import MixupCutmix, smoothed_one_hot


def batch(batch_size=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch_size, 4, 3, 16, 20, generator=generator), torch.tensor([0, 1, 2, 1][:batch_size])


def test_label_smoothing_alone_equals_torch_label_smoothing_cross_entropy():
    pixel_values, labels = batch()
    mixer = MixupCutmix(3, mixup_alpha=0.0, cutmix_alpha=0.0, label_smoothing=0.1)
    mixed, targets = mixer(pixel_values, labels)
    assert mixed is pixel_values
    logits = torch.randn(4, 3)
    soft_loss = torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()
    torch.testing.assert_close(soft_loss, F.cross_entropy(logits, labels, label_smoothing=0.1))
    torch.testing.assert_close(targets, smoothed_one_hot(labels, 3, 0.1))


def test_mixup_blends_each_clip_with_the_reversed_batch_and_its_targets_alike():
    pixel_values, labels = batch()
    mixer = MixupCutmix(3, mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.0, label_smoothing=0.1)
    mixed, targets = mixer(pixel_values, labels, generator=torch.Generator().manual_seed(1))
    # recover lambda from one pixel of clip 0 and check every pixel and target with it
    first, last = pixel_values[0, 0, 0, 0, 0], pixel_values[3, 0, 0, 0, 0]
    lam = float((mixed[0, 0, 0, 0, 0] - last) / (first - last))
    assert 0.0 < lam < 1.0
    torch.testing.assert_close(mixed, lam * pixel_values + (1 - lam) * pixel_values.flip(0), rtol=1e-4, atol=1e-5)
    smoothed = smoothed_one_hot(labels, 3, 0.1)
    torch.testing.assert_close(targets, lam * smoothed + (1 - lam) * smoothed.flip(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(4))


def test_cutmix_pastes_one_box_in_every_frame_and_weights_targets_by_its_area():
    pixel_values, labels = batch()
    mixer = MixupCutmix(3, mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=1.0, label_smoothing=0.0)
    for seed in range(5):
        mixed, targets = mixer(pixel_values, labels, generator=torch.Generator().manual_seed(seed))
        pasted = (mixed != pixel_values)[0]  # (T, C, H, W)
        assert (pasted == pasted[0, 0]).all()  # the same box in every frame and channel
        rows, cols = pasted[0, 0].any(dim=1).nonzero().flatten(), pasted[0, 0].any(dim=0).nonzero().flatten()
        if len(rows) == 0:
            torch.testing.assert_close(targets, F.one_hot(labels, 3).float())
            continue
        box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
        assert pasted[0, 0][box].all()  # a rectangle
        torch.testing.assert_close(mixed[..., box[0], box[1]], pixel_values.flip(0)[..., box[0], box[1]])
        lam = 1.0 - pasted[0, 0].sum().item() / (16 * 20)
        one_hot = F.one_hot(labels, 3).float()
        torch.testing.assert_close(targets, lam * one_hot + (1 - lam) * one_hot.flip(0))


def test_no_mixing_when_the_batch_probability_is_zero():
    pixel_values, labels = batch()
    mixed, targets = MixupCutmix(3, prob=0.0, label_smoothing=0.0)(pixel_values, labels)
    assert mixed is pixel_values
    torch.testing.assert_close(targets, F.one_hot(labels, 3).float())
