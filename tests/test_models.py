"""Model registry: shapes, the features/head contract, normalisation inside, CF-k / EU-k helpers."""

import pytest
import torch

from unlearnkit.models import MODELS, build_model, last_layers, reinit_last_layers

# (name, in_channels, image_size) small enough to run in well under a second each
CASES = [("small_cnn", 3, 32), ("face_cnn", 1, 48), ("resnet18", 3, 16), ("resnet18_dlfd", 1, 32)]


@pytest.mark.parametrize("name,channels,size", CASES)
def test_forward_is_head_of_features(name, channels, size):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5, in_channels=channels, image_size=size).eval()
    x = torch.rand(2, channels, size, size)
    feats = model.features(x)
    assert feats.ndim == 2 and feats.shape[0] == 2
    logits = model(x)
    assert logits.shape == (2, 5)
    torch.testing.assert_close(logits, model.head(feats))


def test_registry_covers_all_cases_and_unknown_name_lists_known():
    assert {c[0] for c in CASES} == set(MODELS)
    with pytest.raises(ValueError, match="allowed: .*small_cnn"):
        build_model("vgg99", num_classes=10)


@pytest.mark.parametrize("kwargs,match", [
    ({"num_classes": 1}, "num_classes"),
    ({"num_classes": 10, "image_size": 4}, "too small"),
    ({"num_classes": 10, "mean": (0.5, 0.5)}, "mean has 2 values"),
    ({"num_classes": 10, "std": 0.0}, "std must be positive"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model("small_cnn", **kwargs)


def test_normalisation_is_the_first_module_and_uses_buffers():
    model = build_model("small_cnn", 10, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    first = next(iter(model.children()))
    assert first is model.normalize
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(first(x)[0, 1], (x[0, 1] - 0.2) / 0.5)
    assert {"normalize.mean", "normalize.std"} <= set(model.state_dict())
    assert not any(n.startswith("normalize") for n, _ in model.named_parameters())


def test_input_gradient_lives_in_pixel_space():
    model = build_model("small_cnn", 10).eval()
    x = torch.rand(3, 3, 32, 32, requires_grad=True)
    model(x)[:, 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_last_layers_counts_blocks_from_the_head():
    model = build_model("resnet18", 10, image_size=16)
    head = list(model.head.parameters())
    assert last_layers(model, 1) == head
    k2 = last_layers(model, 2)
    assert k2[-len(head):] == head and len(k2) == len(head) + len(list(model.body.layer4.parameters()))
    every = {id(p) for p in last_layers(model, len(model.layers()))}
    assert every == {id(p) for p in model.parameters()}
    with pytest.raises(ValueError, match="allowed: 1..6"):
        last_layers(model, 7)


def test_reinit_last_layers_changes_only_those_and_is_seeded():
    torch.manual_seed(0)
    model = build_model("small_cnn", 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng_state = torch.get_rng_state()
    reinit_last_layers(model, 2, seed=3)
    assert torch.equal(torch.get_rng_state(), rng_state), "global RNG must be untouched"
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("head") for k in changed) and any(k.startswith("body.block3") for k in changed)
    assert not any(k.startswith(("body.block1", "body.block2")) for k in changed)
    again = build_model("small_cnn", 10)
    again.load_state_dict(before)
    reinit_last_layers(again, 2, seed=3)
    for k in changed:
        torch.testing.assert_close(again.state_dict()[k], after[k])


def test_dlfds_face_model_has_torchvisions_imagenet_stem():
    stem = build_model("resnet18_dlfd", 8, in_channels=3, image_size=128).body.stem
    assert stem[0].kernel_size == (7, 7) and stem[0].stride == (2, 2) and isinstance(stem[-1], torch.nn.MaxPool2d)
    assert build_model("resnet18", 10, image_size=32).body.stem[0].kernel_size == (3, 3)
