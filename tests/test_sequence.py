"""Pain sequences: the planned timeline (labels rise then fall, rounded AUs and PSPI consistent, blinks, seeded), the
fractional rig, a generated sequence dataset (verifies, frames in meta.json and members), the trainer's frame pairs
and the evaluation's temporal smoothing."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from factory.face.model import FaceModel
from factory.face.rig import AURig
from factory.format.dataset import open_dataset
from factory.format.members import IMAGES, LAYERS, member_kind
from factory.options import ConfigError
from factory.qa.verify import verify_dataset
from factory.run.config import GenerateConfig, load_generate_config
from factory.run.generate import generate
from factory.run.identity import RenderConfig
from factory.spec.expressions import Expression, ExpressionConfig
from factory.spec.labels import PSPI_AUS, max_intensity, pspi
from factory.spec.plan import PlanConfig, plan_identity
from factory.spec.sequence import BLINK_S, MAX_FRAMES, SequenceConfig, plan_sequence, sequence_expressions
from trainer.data import ShardPairs, SplitConfig, identity_pairs
from trainer.evaluate import smoothed


def pain_expressions(count: int = 12) -> list[Expression]:
    return [e for index in range(count) for e in sequence_expressions(plan_identity(index, 0).expressions)]


def unimodal(values: list[int]) -> bool:
    """Non-decreasing up to its first maximum, non-increasing after it."""
    peak = values.index(max(values))
    return all(a <= b for a, b in zip(values[:peak], values[1:peak + 1])) and all(a >= b for a, b in zip(values[peak:], values[peak + 1:]))


def test_labels_rise_from_neutral_to_the_apex_and_fall_back():
    config = SequenceConfig(frames=40)
    for k, expression in enumerate(pain_expressions(6)):
        sequence = plan_sequence(0, k, expression, config)
        pspis = [frame.pspi for frame in sequence.frames]
        assert pspis[0] == 0 and pspis[-1] == 0, (expression.name, pspis)  # neutral lead-in and tail
        assert max(pspis) == expression.pspi and unimodal(pspis), (expression.name, pspis)
        start = sequence.lead_s + sequence.onset_s  # every AU is at its planned intensity over the apex, lags aside
        apex = [frame for frame in sequence.frames if start + 0.1 <= frame.time_s <= start + sequence.apex_s - 0.1]
        assert apex and all(frame.aus == expression.aus and frame.pspi == expression.pspi for frame in apex)
        for au in expression.aus:
            assert unimodal([frame.aus[au] for frame in sequence.frames])
        assert sequence.fps == pytest.approx((config.frames - 1) / sequence.duration_s)
        assert 0.5 <= sequence.onset_s <= 2 and 0.5 <= sequence.apex_s <= 2 and 0.8 <= sequence.offset_s <= 2


def test_rounded_aus_are_facs_integers_and_pspi_is_theirs():
    for k, expression in enumerate(pain_expressions(8)):
        for frame in plan_sequence(3, k, expression, SequenceConfig(frames=25)).frames:
            for au, value in frame.aus.items():
                assert isinstance(value, int) and 0 <= value <= max_intensity(au)
                assert abs(value - frame.intensities[au]) <= 0.5  # rounded from the fractional intensity
            assert frame.pspi == pspi(frame.aus) and set(PSPI_AUS) <= set(frame.aus)
            assert 0 <= frame.blink <= 1 and all(abs(a) < 5 for a in (frame.head.yaw, frame.head.pitch, frame.head.roll))


def test_blinks_are_short_and_never_behind_closed_eyes():
    blinks = 0
    for k, expression in enumerate(pain_expressions(20)):
        sequence = plan_sequence(0, k, expression, SequenceConfig(frames=MAX_FRAMES))
        for start, duration in sequence.blinks:
            assert BLINK_S[0] <= duration <= BLINK_S[1] and 0 <= start <= sequence.duration_s
        for frame in sequence.frames:
            assert not (frame.blink > 0 and frame.intensities.get("AU43", 0) >= 0.5)
            assert frame.posed_intensities()["AU43"] == max(frame.intensities.get("AU43", 0), frame.blink)
            assert frame.aus["AU43"] == int(frame.intensities.get("AU43", 0) >= 0.5)  # a blink (AU45) is not AU43
        blinks += len(sequence.blinks)
    assert blinks > 20  # 12–24 a minute over sequences of a few seconds each


def test_sequences_are_seeded_and_leave_plans_alone():
    expression = pain_expressions(1)[0]
    config = SequenceConfig(frames=10)
    assert plan_sequence(0, 0, expression, config) == plan_sequence(0, 0, expression, config)
    assert plan_sequence(0, 0, expression, config) != plan_sequence(1, 0, expression, config)
    assert plan_sequence(0, 0, expression, config) != plan_sequence(0, 1, expression, config)
    assert plan_identity(0, 0) == plan_identity(0, 0)  # sequences draw from their own streams


@pytest.mark.parametrize("frames", [1, 2, MAX_FRAMES + 1, -1, True, 2.5])
def test_a_bad_frame_count_is_refused_by_name(frames):
    with pytest.raises(ConfigError, match="frames"):
        RenderConfig.from_dict({"sequence": {"frames": frames}})


def test_the_flag_and_the_config_key_set_the_frames(tmp_path):
    assert load_generate_config(None, identities=1, out=str(tmp_path), sequence_frames=12).render.sequence.frames == 12
    (tmp_path / "c.yaml").write_text("identities: 1\nout: x\nrender: {sequence: {frames: 5}}\n")
    assert load_generate_config(tmp_path / "c.yaml").render.sequence.frames == 5
    assert load_generate_config(tmp_path / "c.yaml", sequence_frames=7).render.sequence.frames == 7
    assert GenerateConfig(identities=1, out="x").render.sequence == SequenceConfig(frames=0)  # stills only by default


def test_fractional_weights_agree_with_integer_ones_and_interpolate():
    rig = AURig(FaceModel.load())
    aus = [{"AU4": 3, "AU6": 2, "AU43": 1, "AU5": 4}, {"AU10": 5, "AU9": 1}]
    assert torch.equal(rig.fractional_weights([{k: float(v) for k, v in a.items()} for a in aus]), rig.expression_weights(aus))
    half = rig.fractional_weights([{"AU4": 2.5}])
    low, high = rig.expression_weights([{"AU4": 2}]), rig.expression_weights([{"AU4": 3}])
    assert torch.allclose(half, (low + high) / 2)
    with pytest.raises(ValueError, match="AU4"):
        rig.fractional_weights([{"AU4": 5.5}])


@pytest.fixture(scope="module")
def sequence_dataset(tmp_path_factory, ray_local):
    """One identity, two pain expressions of 4 frames each, two views, 48 px: through `generate` and its workers."""
    out = tmp_path_factory.mktemp("sequence") / "ds"
    plan = PlanConfig(view_yaws=(0.0, 30.0), expressions=ExpressionConfig(pain_expressions=2))
    render = RenderConfig(image_size=48, texture_size=128, sequence=SequenceConfig(frames=4))
    generate(GenerateConfig(identities=1, out=str(out), workers=1, plan=plan, render=render), progress=False)
    return out


def test_a_sequence_dataset_verifies_with_its_frames(sequence_dataset):
    report = verify_dataset(str(sequence_dataset))
    assert report.images == (3 + 2 * 4) * 2 * 3 + 2  # (stills + frames) × views × (rgb, seg, depth), heatmaps (the texture is in mesh.glb)
    [(key, members)] = list(open_dataset(str(sequence_dataset)).samples(sets=(IMAGES, LAYERS)))  # seg and depth are layers
    meta = json.loads(members["meta.json"])
    assert [s["expression"] for s in meta["sequences"]] == ["pain00", "pain01"]
    assert [f["name"] for f in meta["frames"]] == [f"pain0{x}f0{k}" for x in (0, 1) for k in range(4)]
    for frame in meta["frames"]:
        assert frame["pspi"] == pspi(frame["aus"])
        assert {f"{frame['name']}.v{v}.{kind}" for v in (0, 1) for kind in ("jpg", "seg.png", "depth.png")} <= set(members)
    assert member_kind("pain00f01.v0.jpg") is not None and member_kind("pain00f01.heat.png") is None
    expressions = {e["name"]: e for e in meta["expressions"]}
    apex = max(meta["frames"][:4], key=lambda f: f["pspi"])
    assert apex["pspi"] <= expressions["pain00"]["pspi"] and meta["frames"][0]["pspi"] == 0
    # A frame at the apex differs from the neutral frame; the first frame is close to the neutral still.
    assert members[f"{apex['name']}.v0.jpg"] != members["pain00f00.v0.jpg"]


def test_a_damaged_frame_label_is_refused(sequence_dataset):
    from factory.format.sample import SampleError, read_meta

    [(key, members)] = list(open_dataset(str(sequence_dataset)).samples())
    meta = json.loads(members["meta.json"])
    meta["frames"][1]["pspi"] += 1
    with pytest.raises(SampleError, match="frame pain00f01: pspi"):
        read_meta("x", key, {**members, "meta.json": json.dumps(meta).encode()})
    meta["frames"][1] = {**meta["frames"][1], "name": "pain07f01", "expression": "pain07"}
    with pytest.raises(SampleError, match="expression"):
        read_meta("x", key, {**members, "meta.json": json.dumps(meta).encode()})


def test_the_trainer_streams_frame_pairs_with_their_labels(sequence_dataset):
    [(key, members)] = list(open_dataset(str(sequence_dataset)).samples())
    meta = json.loads(members["meta.json"])
    pairs = {pair.key: pair for pair in identity_pairs(members, meta)}
    assert len(pairs) == (3 + 8) * 2
    for frame in meta["frames"]:
        pair = pairs[f"{key}/{frame['name']}.v1"]
        assert pair.pain == members[f"{frame['name']}.v1.jpg"] and pair.reference == members["neutral.v1.jpg"]
        assert pair.pspi == frame["pspi"] and pair.aus[0] == frame["aus"]["AU4"] / 5
    split = SplitConfig().split_of(key)
    streamed = [pair.key for pair in ShardPairs(str(sequence_dataset)).pairs(split)]
    assert sorted(streamed) == sorted(pairs)


def test_sequence_renders_are_deterministic(sequence_dataset, tmp_path):
    again = tmp_path / "again"
    plan = PlanConfig(view_yaws=(0.0, 30.0), expressions=ExpressionConfig(pain_expressions=2))
    render = RenderConfig(image_size=48, texture_size=128, sequence=SequenceConfig(frames=4))
    generate(GenerateConfig(identities=1, out=str(again), workers=1, plan=plan, render=render), progress=False)
    first, second = (sorted((sequence_dataset if n == 0 else again).glob("shards/*.tar")) for n in (0, 1))
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_smoothing_averages_each_sequence_alone():
    keys = ["id-0000001/pain00f00.v0", "id-0000001/pain00f02.v0", "id-0000001/pain00f01.v0", "id-0000001/pain00.v0",
            "id-0000001/pain00f00.v1", "id-0000001/pain00f01.v1"]
    pred = [0.0, 6.0, 3.0, 9.0, 1.0, 5.0]
    assert smoothed(pred, keys, 1) == pred
    out = smoothed(pred, keys, 3)
    assert out[3] == 9.0  # a still is left alone
    assert out[0] == pytest.approx(1.5) and out[2] == pytest.approx(3.0) and out[1] == pytest.approx(4.5)  # by frame order
    assert out[4] == pytest.approx(3.0) and out[5] == pytest.approx(3.0)  # another view is another sequence
    assert np.isclose(np.mean(smoothed(pred, keys, 2)[:3]), np.mean([1.5, 4.5, 6.0]))


def test_the_default_render_has_no_frames():
    spec = plan_identity(0, 0, PlanConfig(view_yaws=(0.0,), expressions=ExpressionConfig(pain_expressions=1)))
    from factory.run.identity import IdentityRenderer

    renderer = IdentityRenderer(RenderConfig(image_size=32, texture_size=64))
    members = renderer.encode_sample(spec, renderer.render(spec))
    meta = json.loads(members["meta.json"])
    assert "frames" not in meta and "sequences" not in meta and not any("f0" in name for name in members)
    assert dataclasses.asdict(renderer.config)["sequence"] == {"frames": 0}
