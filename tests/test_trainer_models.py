"""The pain models: registry, outputs, LoRA freezing, loading backbone weights from a local file, the loss."""

import pytest
import torch

from trainer.models import BackboneConfig, LossWeights, create_backbone, create_model, list_models, pain_loss
from trainer.models.backbone import check_backbone

TINY = dict(name="vit_tiny_patch16_224", image_size=32, overrides={"depth": 2, "embed_dim": 32, "num_heads": 2})


def images(batch=3, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=generator), torch.rand(batch, 3, size, size, generator=generator)


def test_registry_lists_the_three_models_and_rejects_unknown_names():
    assert list_models() == ["vit", "vit-diff", "vitpain"]
    with pytest.raises(ValueError, match="unknown model 'vitpian'"):
        create_model("vitpian", BackboneConfig(**TINY), fusion_heads=2)


@pytest.mark.parametrize("name", ["vitpain", "vit", "vit-diff"])
def test_outputs_are_in_range(name):
    torch.manual_seed(0)
    model = create_model(name, BackboneConfig(**TINY), fusion_heads=2).eval()
    outputs = model(*images())
    assert outputs["pspi"].shape == (3,) and outputs["ge_logits"].shape == (3, 3) and outputs["aus"].shape == (3, 6)
    assert (outputs["pspi"] >= 0).all() and (outputs["pspi"] <= 16).all()
    assert (outputs["aus"] >= 0).all() and (outputs["aus"] <= 1).all()


def test_reference_matters_except_for_the_single_image_baseline():
    pain, reference = images()
    for name, uses_reference in (("vitpain", True), ("vit-diff", True), ("vit", False)):
        torch.manual_seed(0)
        model = create_model(name, BackboneConfig(**TINY), fusion_heads=2).eval()
        with torch.no_grad():
            changed = not torch.allclose(model(pain, reference)["pspi"], model(pain, torch.zeros_like(reference))["pspi"])
        assert changed == uses_reference, name


def test_vitpain_has_a_second_encoder_for_the_reference():
    model = create_model("vitpain", BackboneConfig(**TINY), fusion_heads=2)
    assert model.encoder is not model.reference_encoder
    assert model.encoder.patch_embed.proj.weight.data_ptr() != model.reference_encoder.patch_embed.proj.weight.data_ptr()


def test_lora_freezes_the_backbone_and_trains_adapters_on_attention_only():
    model = create_model("vitpain", BackboneConfig(**TINY, lora_rank=4), fusion_heads=2)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    backbone_trainable = {n for n in trainable if n.startswith(("encoder.", "reference_encoder."))}
    assert backbone_trainable and all("lora_" in n and ".attn." in n for n in backbone_trainable)
    assert any(n.startswith("heads.") for n in trainable) and any(n.startswith("fusion.") for n in trainable)
    assert not any("patch_embed" in n for n in trainable)


def test_pretrained_weights_load_from_a_local_file(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(1)
    source = timm.create_model(TINY["name"], pretrained=False, num_classes=0, img_size=32, **TINY["overrides"])
    weights = tmp_path / "tiny.safetensors"
    save_file(source.state_dict(), str(weights))
    loaded = create_backbone(BackboneConfig(**TINY, pretrained=str(weights)))
    for name, tensor in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    scratch = create_backbone(BackboneConfig(**TINY))
    assert not torch.equal(scratch.state_dict()["blocks.0.attn.qkv.weight"], source.state_dict()["blocks.0.attn.qkv.weight"])


def test_hub_weights_come_from_the_cache_only(tmp_path, monkeypatch):
    import huggingface_hub.constants
    import timm
    from safetensors.torch import save_file

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache"):  # empty cache: an error, no download
        create_backbone(BackboneConfig(**TINY, pretrained="hub"))
    # The cache layout huggingface_hub writes: models--org--name/refs/main → snapshots/<revision>/model.safetensors
    repo = timm.get_pretrained_cfg(TINY["name"]).hf_hub_id
    cached = tmp_path / f"models--{repo.replace('/', '--')}"
    (cached / "refs").mkdir(parents=True)
    (cached / "refs" / "main").write_text("0123abc")
    (cached / "snapshots" / "0123abc").mkdir(parents=True)
    torch.manual_seed(2)
    source = timm.create_model(TINY["name"], pretrained=False, num_classes=0, img_size=32, **TINY["overrides"])
    save_file(source.state_dict(), str(cached / "snapshots" / "0123abc" / "model.safetensors"))
    loaded = create_backbone(BackboneConfig(**TINY, pretrained="hub"))
    assert torch.equal(loaded.state_dict()["blocks.1.mlp.fc2.weight"], source.state_dict()["blocks.1.mlp.fc2.weight"])


def test_missing_weight_file_fails_clearly(tmp_path):
    config = BackboneConfig(**TINY, pretrained=str(tmp_path / "absent.pth"))  # a recipe may name a file of another machine
    with pytest.raises(FileNotFoundError, match="pretrained backbone weights not found"):
        check_backbone(config)  # the driver's check before any worker starts
    with pytest.raises(FileNotFoundError, match="pretrained backbone weights not found"):
        create_backbone(config)


def test_unknown_backbone_and_bad_image_size():
    with pytest.raises(ValueError, match="unknown timm backbone 'vit_nonexistent'"):
        create_backbone(BackboneConfig(name="vit_nonexistent", image_size=32))
    with pytest.raises(ValueError, match="multiple of the patch size 16"):
        BackboneConfig(**{**TINY, "image_size": 40})
    with pytest.raises(ValueError, match="multiple of the patch size 14"):
        BackboneConfig(name="vit_small_patch14_dinov2", image_size=224 + 16)
    assert check_backbone(BackboneConfig(name="vit_large_patch16_dinov3.sat493m")) is None  # a tagged name is known


def test_lora_dropout_reaches_the_adapters():
    model = create_backbone(BackboneConfig(**TINY, lora_rank=4, lora_dropout=0.25))
    dropouts = {module.p for name, module in model.named_modules() if "lora_dropout" in name and isinstance(module, torch.nn.Dropout)}
    assert dropouts == {0.25}
    with pytest.raises(ValueError, match="lora_dropout must be in"):
        BackboneConfig(**TINY, lora_dropout=1.0)


def test_loss_parts_and_weights():
    outputs = {"pspi": torch.tensor([8.0, 0.0]), "ge_logits": torch.zeros(2, 3), "aus": torch.full((2, 6), 0.5)}
    pspi, aus = torch.tensor([16.0, 0.0]), torch.zeros(2, 6)
    parts = pain_loss(outputs, pspi, aus, LossWeights(pspi=1.0, thresholds=0.0, aus=2.0))
    assert parts["loss_pspi"].item() == pytest.approx(0.125)  # ((0.5 − 1)² + 0) / 2
    assert parts["loss_thresholds"].item() == pytest.approx(0.693147, abs=1e-5)  # BCE at logit 0 is ln 2
    assert parts["loss_aus"].item() == pytest.approx(0.25)
    assert parts["loss"].item() == pytest.approx(0.125 + 2 * 0.25)
    with pytest.raises(ValueError):
        LossWeights(pspi=-1.0)
