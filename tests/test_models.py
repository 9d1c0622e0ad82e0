"""AlexNet layouts, torchvision key compatibility, safe checkpoint loading."""

import pytest

from edgealex.errors import EdgeAlexError

torch = pytest.importorskip("torch")

from edgealex.models.alexnet import build_model, load_checkpoint, load_weights, save_checkpoint  # noqa: E402
from edgealex.preprocess import Preprocess  # noqa: E402

# torchvision.models.alexnet().state_dict() keys and shapes (torchvision 0.2x), written out here
# because torchvision is not a dependency.
TORCHVISION_ALEXNET = {
    "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
    "classifier.1.weight": (4096, 9216), "classifier.1.bias": (4096,),
    "classifier.4.weight": (4096, 4096), "classifier.4.bias": (4096,),
    "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
}


def test_alexnet_keys_and_shapes_match_torchvision():
    model = build_model("alexnet", num_classes=1000)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == TORCHVISION_ALEXNET


def test_alexnet_v1_layout():
    model = build_model("alexnet-v1", num_classes=10)
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert convs[0].kernel_size == (11, 11) and convs[0].stride == (4, 4)
    lrns = [m for m in model.features if isinstance(m, torch.nn.LocalResponseNorm)]
    assert [(m.size, m.alpha, m.beta, m.k) for m in lrns] == [(5, 1e-4, 0.75, 2.0)] * 2
    pools = [m for m in model.features if isinstance(m, torch.nn.MaxPool2d)]
    assert all(p.kernel_size == 3 and p.stride == 2 for p in pools) and len(pools) == 3
    assert not [m for m in build_model("alexnet-v1", 10, lrn=False).features
                if isinstance(m, torch.nn.LocalResponseNorm)]
    out = model.eval()(torch.zeros(2, 3, 224, 224))
    assert tuple(out.shape) == (2, 10)


def test_normal_init_recipe():
    model = build_model("alexnet", num_classes=5, init="normal", seed=1)
    w = model.features[0].weight.detach()
    assert abs(float(w.std()) - 0.01) < 0.001
    assert float(model.features[3].bias.detach().mean()) == 1.0
    assert float(model.features[0].bias.detach().abs().sum()) == 0.0


def test_torchvision_state_dict_round_trip(tmp_path):
    src = build_model("alexnet", num_classes=1000, seed=3)
    path = tmp_path / "tv.pth"
    torch.save(src.state_dict(), str(path))
    ckpt = load_checkpoint(str(path))
    dst = build_model("alexnet", num_classes=1000, seed=4)
    load_weights(dst, ckpt["state_dict"])
    for key, value in src.state_dict().items():
        assert torch.equal(value, dst.state_dict()[key])


def test_imagenet_checkpoint_into_new_head(tmp_path):
    src = build_model("alexnet", num_classes=1000, seed=3)
    path = tmp_path / "imagenet.pth"
    torch.save(src.state_dict(), str(path))
    dst = build_model("alexnet", num_classes=5, seed=4)
    with pytest.raises(EdgeAlexError) as info:
        load_weights(dst, load_checkpoint(str(path))["state_dict"], source=str(path))
    assert "classifier.6.weight (1000, 4096) != (5, 4096)" in str(info.value)
    assert "--new-head" in str(info.value)
    load_weights(dst, load_checkpoint(str(path))["state_dict"], new_head=True)
    assert torch.equal(dst.features[0].weight, src.features[0].weight)
    assert tuple(dst.classifier[6].weight.shape) == (5, 4096)


def test_wrong_arch_weights_list_first_mismatches(tmp_path):
    path = tmp_path / "v1.pth"
    torch.save(build_model("alexnet-v1", num_classes=5).state_dict(), str(path))
    with pytest.raises(EdgeAlexError) as info:
        load_weights(build_model("alexnet", 5), load_checkpoint(str(path))["state_dict"], source=str(path))
    assert "shape mismatch: features.0.weight (96, 3, 11, 11) != (64, 3, 11, 11)" in str(info.value)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"

    class Payload:
        def __reduce__(self):
            return (print, ("owned",))

    torch.save({"state_dict": Payload()}, str(path))
    with pytest.raises(EdgeAlexError) as info:
        load_checkpoint(str(path))
    assert "weights_only=True" in str(info.value)


def test_corrupt_and_missing_checkpoint(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(EdgeAlexError, match="cannot load the checkpoint"):
        load_checkpoint(str(bad))
    with pytest.raises(EdgeAlexError, match="does not exist"):
        load_checkpoint(str(tmp_path / "missing.pth"))


def test_edgealex_checkpoint_round_trip(tmp_path):
    model = build_model("alexnet-v1", num_classes=3, seed=0)
    path = save_checkpoint(str(tmp_path / "m.pt"), model, ["ok", "a", "b"], Preprocess(), epoch=2)
    data = torch.load(path, weights_only=True)
    assert data["arch"] == "alexnet-v1" and data["labels"] == ["ok", "a", "b"] and data["epoch"] == 2
    assert Preprocess.from_dict(data["preprocess"]) == Preprocess()
