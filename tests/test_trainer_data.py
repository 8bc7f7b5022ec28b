"""The shard reader: manifest, identity-disjoint split, pairs, per-rank streaming (local and S3), augmentation."""

import dataclasses
import json
import random

import pytest
import torch

from factory.format.dataset import DatasetError, open_dataset
from factory.format.manifest import ManifestError
from tests.trainer_shards import write_dataset
from trainer.data import (
    SPLITS,
    Augmentation,
    PairTransform,
    ShardPairs,
    SplitConfig,
    batches,
    identity_pairs,
    pair_group,
    shuffled,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards") / "ds"
    metas = write_dataset(str(root), identities=10, image_size=32, pain_expressions=3, views=(0.0, -35.0), per_shard=3)
    return str(root), metas


def test_split_is_seeded_stable_and_roughly_70_20_10():
    split = SplitConfig(seed=0)
    ids = [f"id-{i:07d}" for i in range(2000)]
    first = [split.split_of(i) for i in ids]
    assert first == [SplitConfig(seed=0).split_of(i) for i in ids]
    shares = {name: first.count(name) / len(ids) for name in SPLITS}
    assert abs(shares["train"] - 0.7) < 0.04 and abs(shares["val"] - 0.2) < 0.04 and abs(shares["test"] - 0.1) < 0.03
    assert first != [SplitConfig(seed=1).split_of(i) for i in ids]
    with pytest.raises(ValueError, match="summing to 1"):
        SplitConfig(fractions=(0.5, 0.2, 0.2))


def test_samples_stream_in_manifest_order(dataset):
    url, metas = dataset
    keys = [key for key, _ in open_dataset(url).samples()]
    assert keys == [m["id"] for m in metas]


def test_pairs_of_an_identity(dataset):
    url, metas = dataset
    _, sample = next(open_dataset(url).samples())
    meta = metas[0]
    pairs = identity_pairs(sample, json.loads(sample["meta.json"]))
    assert len(pairs) == len(meta["views"]) * len(meta["expressions"])  # 4 expressions (neutral + 3) × 2 views
    for pair in pairs:
        expression, view = pair.key.split("/")[1].split(".")
        assert pair.reference == sample[f"neutral.{view}.jpg"]  # the reference is the neutral face of the same view
        assert pair.pain == sample[f"{expression}.{view}.jpg"]
        labels = next(e for e in meta["expressions"] if e["name"] == expression)
        assert pair.pspi == labels["pspi"]
        assert pair.aus == tuple(labels["aus"][au] / top for au, top in zip(("AU4", "AU6", "AU7", "AU9", "AU10", "AU43"), (5, 5, 5, 5, 5, 1)))
        assert pair.group == {**{k: meta["demographics"][k] for k in ("age_band", "gender", "ethnicity")},
                              "fitzpatrick": meta["skin"]["fitzpatrick"]}
        assert pair.identity == meta["id"]
    neutral = [p for p in pairs if "/neutral." in p.key]
    assert len(neutral) == 2 and all(p.pspi == 0 and p.aus == (0.0,) * 6 for p in neutral)


def test_groups_follow_the_data():
    """A field named in GROUP_FIELDS appears in the groups when a dataset has it, per view where it lies in a view,
    and is left out when it is absent or not a plain value."""
    meta = {"id": "id-0000001", "demographics": {"gender": "female", "age_band": "60-74"}, "skin": {"fitzpatrick": 5},
            "scenario": "clinical", "views": [{"name": "v0", "occluder": "nasal_cannula"}, {"name": "v1"}]}
    assert pair_group(meta, meta["views"][0]) == {"gender": "female", "age_band": "60-74", "fitzpatrick": 5,
                                                  "scenario": "clinical", "occluder": "nasal_cannula"}
    assert pair_group({**meta, "scenario": {"kind": "clinical"}, "skin": None}, meta["views"][1]) == {"gender": "female", "age_band": "60-74"}


def test_splits_are_identity_disjoint_and_cover_everything(dataset):
    url, metas = dataset
    source = ShardPairs(url, SplitConfig(seed=3, fractions=(0.5, 0.25, 0.25)))
    identities = {split: {p.key.split("/")[0] for p in source.pairs(split)} for split in SPLITS}
    assert not identities["train"] & identities["val"] and not identities["train"] & identities["test"] and not identities["val"] & identities["test"]
    assert set().union(*identities.values()) == {m["id"] for m in metas}


@pytest.mark.parametrize("world", [2, 5])  # fewer shards than ranks (4 shards, 5 ranks) switches to per-identity
def test_ranks_share_a_split_without_overlap(dataset, world):
    url, _ = dataset
    source = ShardPairs(url, SplitConfig(fractions=(1.0, 0.0, 0.0)))
    everything = sorted(p.key for p in source.pairs("train"))
    per_rank = [sorted(p.key for p in source.pairs("train", rank, world)) for rank in range(world)]
    assert sorted(k for keys in per_rank for k in keys) == everything
    assert all(keys for keys in per_rank)


def test_s3_stream_equals_local(dataset, s3, tmp_path):
    url, _ = dataset
    remote = f"s3://{s3.bucket}/datasets/ds"
    s3.filesystem().put(url + "/", remote, recursive=True)
    local = [(p.key, p.pain, p.pspi) for p in ShardPairs(url).pairs("train", 0, 2, epoch=1, shuffle=True)]
    streamed = [(p.key, p.pain, p.pspi) for p in ShardPairs(remote).pairs("train", 0, 2, epoch=1, shuffle=True)]
    assert local == streamed and local


def test_manifest_problems_are_named(tmp_path, dataset):
    with pytest.raises(DatasetError, match="manifest.json not found: not a painfactory dataset"):
        ShardPairs(str(tmp_path)).check()
    url, _ = dataset
    manifest = json.loads(open(f"{url}/manifest.json").read())
    for escaping in ("images/../../etc/passwd", "/etc/passwd", "layers/shard-000000.tar"):  # outside, absolute, another set's
        files = {"images": {**manifest["shards"][0]["files"]["images"], "path": escaping}}
        (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "shards": [{**manifest["shards"][0], "files": files}]}))
        with pytest.raises(ManifestError, match="images file path .* is not images/shard-NNNNNN.tar"):
            ShardPairs(str(tmp_path)).check()
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "format": "painfactory-dataset/1"}))  # before shard sets
    with pytest.raises(ManifestError, match="format 'painfactory-dataset/1'; this version reads 'painfactory-dataset/2'"):
        ShardPairs(str(tmp_path)).check()
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ManifestError, match="format 'something-else'"):
        ShardPairs(str(tmp_path)).check()
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "shards": []}))
    with pytest.raises(DatasetError, match="lists no shards"):
        ShardPairs(str(tmp_path)).check()


def test_batches_are_deterministic_and_augment_both_faces_alike(dataset):
    url, _ = dataset
    source = ShardPairs(url, SplitConfig(fractions=(1.0, 0.0, 0.0)))
    transform = PairTransform(32, augmentation=Augmentation(flip=1.0, rotate_deg=0, translate=0, scale=0, brightness=0,
                                                             contrast=0, saturation=0, blur=0))
    plain = PairTransform(32)

    def first_batch(transform, seed):
        rng = random.Random(seed)
        return next(batches(shuffled(source.pairs("train"), 8, rng), transform, 4, rng, drop_last=True))

    one, again, other = first_batch(plain, 0), first_batch(plain, 0), first_batch(plain, 1)
    assert one["keys"] == again["keys"] and torch.equal(one["pain"], again["pain"])
    assert one["keys"] != other["keys"]
    flipped = first_batch(transform, 0)
    assert flipped["keys"] == one["keys"]
    # A flip that always happens: both faces of a pair are mirrored together.
    assert torch.allclose(flipped["pain"], one["pain"].flip(-1)) and torch.allclose(flipped["reference"], one["reference"].flip(-1))
    assert one["pain"].shape == (4, 3, 32, 32) and one["aus"].shape == (4, 6)


def test_default_augmentation_changes_pixels_within_range(dataset):
    url, _ = dataset
    pair = next(ShardPairs(url, SplitConfig(fractions=(1.0, 0.0, 0.0))).pairs("train"))
    augmented = PairTransform(32, augmentation=Augmentation())
    pain, reference = augmented(pair, random.Random(5))
    plain_pain, _ = PairTransform(32)(pair, random.Random(5))
    assert not torch.allclose(pain, plain_pain) and pain.min() >= -1 and pain.max() <= 1


OFF = dict(flip=0.0, rotate_deg=0.0, translate=0.0, scale=0.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, blur=0.0)


def same_face_pair(dataset):
    """A training pair whose two faces are the same image, so any difference after augmenting is the augmentation's."""
    url, _ = dataset
    pair = next(ShardPairs(url, SplitConfig(fractions=(1.0, 0.0, 0.0))).pairs("train"))
    return dataclasses.replace(pair, reference=pair.pain)


def test_augmentation_switched_off_is_the_identity(dataset):
    pair = same_face_pair(dataset)
    plain_pain, plain_reference = PairTransform(32)(pair, random.Random(0))
    pain, reference = PairTransform(32, augmentation=Augmentation(**OFF))(pair, random.Random(0))
    assert torch.allclose(pain, plain_pain, atol=1e-6) and torch.allclose(reference, plain_reference, atol=1e-6)


def test_geometry_is_shared_by_both_faces_and_colour_is_drawn_per_face(dataset):
    pair = same_face_pair(dataset)
    plain, _ = PairTransform(32)(pair, random.Random(0))
    geometry = Augmentation(**{**OFF, "flip": 0.5, "rotate_deg": 5.0, "translate": 0.1, "scale": 0.1})
    for seed in range(4):
        pain, reference = PairTransform(32, augmentation=geometry)(pair, random.Random(seed))
        assert torch.equal(pain, reference)  # the same rotation, shift, scale and flip on both
        assert not torch.allclose(pain, plain)
    colour = Augmentation(**{**OFF, "brightness": 0.3, "contrast": 0.3, "saturation": 0.2, "hue": 0.1, "blur": 1.0})
    pain, reference = PairTransform(32, augmentation=colour)(pair, random.Random(0))
    assert not torch.allclose(pain, reference)


def test_each_colour_augmentation_stays_within_its_range(dataset):
    pair = same_face_pair(dataset)
    unnormalised = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # pixels in 0..1, to compare brightness directly
    plain, _ = PairTransform(32, **unnormalised)(pair, random.Random(0))
    ratios = []
    for seed in range(20):
        brighter, _ = PairTransform(32, **unnormalised, augmentation=Augmentation(**{**OFF, "brightness": 0.2}))(pair, random.Random(seed))
        ratios.append(float(brighter.sum() / plain.sum()))
    assert 0.79 <= min(ratios) and max(ratios) <= 1.2 and max(ratios) - min(ratios) > 0.1  # 1 ± 0.2, clamped at white
    blurred, _ = PairTransform(32, **unnormalised, augmentation=Augmentation(**{**OFF, "blur": 1.0}))(pair, random.Random(0))
    edges = lambda image: float((image[..., 1:] - image[..., :-1]).abs().sum())  # noqa: E731
    assert edges(blurred) < edges(plain)
    shifted, _ = PairTransform(32, **unnormalised, augmentation=Augmentation(**{**OFF, "hue": 0.5}))(pair, random.Random(1))
    assert not torch.allclose(shifted, plain, atol=1e-3)
    assert float(shifted.max(dim=0).values.mean()) == pytest.approx(float(plain.max(dim=0).values.mean()), abs=0.02)  # value kept


@pytest.mark.parametrize("values, message", [
    ({"flip": 1.5}, "flip is a probability in [0, 1]"), ({"blur": -0.1}, "blur is a probability in [0, 1]"),
    ({"brightness": 1.0}, "brightness must be in [0, 1)"), ({"translate": -0.1}, "translate must be in [0, 1)"),
    ({"rotate_deg": 200}, "rotate_deg must be in [0, 180]"), ({"hue": 0.6}, "hue in [0, 0.5]"),
])
def test_augmentation_values_are_checked(values, message):
    with pytest.raises(ValueError) as error:
        Augmentation(**values)
    assert message in str(error.value)
