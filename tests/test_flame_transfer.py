"""ICT's expression shapes carried to a FLAME template, checked against a known answer, and the AU rig driving FLAME.

The known answer: the synthetic FLAME file is ICT's own head re-meshed (5,000 of its vertices), re-ordered, given
another identity, warped by a smooth field no identity mode makes, rotated, scaled by 0.93 and written in metres
(tests/flame_files.py). ICT's expression shapes are identity-independent, so at FLAME vertex v (ICT vertex i) the
true displacement of a shape is 0.93 · R · d_i. The transfer must reproduce it:
- for every shape that moves something (56 of 57; jawOpen is FLAME's jaw joint instead): 99 % of vertices within
  ERROR_P99 of the shape's peak displacement, the mean error below MEAN_ERROR_CM;
- the shapes the AU table uses: no vertex off by more than AU_WORST of the shape's peak (the worst sit on the inner
  lips and lid corners, where a shape changes fastest across the surface).
Measured on this file (printed by the test): 99th percentile at most 4.7 % of the peak, mean 0.016 mm, AU worst 17 %.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factory.face.flame import transfer
from factory.face.flame.model import FlameSource, load_flame_model
from factory.face.model import FaceModel
from factory.face.rig import AU_SHAPES, AURig
from factory.options import ConfigError
from factory.run.config import GenerateConfig
from factory.spec.labels import RIG_AUS, max_intensity
from factory.spec.plan import PlanConfig, plan_identity
from tests.flame_files import true_displacements, write_flame, write_landmarks

ERROR_P99 = 0.06
MEAN_ERROR_CM = 0.005
AU_WORST = 0.25
LANDMARK_MEDIAN_CM, LANDMARK_WORST_CM = 0.25, 0.5


@pytest.fixture(scope="module")
def loaded(flame_2020):
    return load_flame_model(FlameSource(str(flame_2020.path)))


def test_transferred_shapes_reproduce_icts_own_displacements(loaded, flame_2020):
    ict = FaceModel.load()
    true = true_displacements(flame_2020, ict.expression_basis)
    got = loaded.model.expression_basis
    moving = [k for k, name in enumerate(ict.expression_names) if name != "jawOpen" and float(true[k].norm(dim=1).max()) > 0.05]
    assert len(moving) == 56  # all but jawOpen and the two pupil dilations (a tenth of a millimetre), browKnit included
    error = (got[moving] - true[moving]).norm(dim=2)  # (S, V) cm
    peak = true[moving].norm(dim=2).amax(dim=1, keepdim=True)
    relative = error / peak
    p99 = relative.quantile(0.99, dim=1)
    au_rows = [i for i, k in enumerate(moving) if any(ict.expression_names[k] in shapes for shapes in AU_SHAPES.values())]
    print(f"\n99th-percentile error, worst shape: {float(p99.max()):.3f} of its peak; mean error {float(error.mean()) * 10:.4f} mm; "
          f"worst vertex of an AU shape: {float(relative[au_rows].max()):.3f} of the peak; worst vertex overall {float(error.max()):.3f} cm")
    assert float(p99.max()) < ERROR_P99
    assert float(error.mean()) < MEAN_ERROR_CM
    assert float(relative[au_rows].max()) < AU_WORST


def test_landmarks_transferred_and_from_an_embedding_file(loaded, flame_2020, tmp_path):
    truth = loaded.model.neutral[torch.as_tensor(flame_2020.landmark_vertices)]
    transferred = (loaded.model.landmark_points(loaded.model.neutral) - truth).norm(dim=1)
    assert loaded.landmarks_from == "transferred from ICT"
    assert float(transferred.median()) < LANDMARK_MEDIAN_CM and float(transferred.max()) < LANDMARK_WORST_CM
    write_landmarks(tmp_path / "landmark_embedding.npy", flame_2020)
    embedded = load_flame_model(FlameSource(str(flame_2020.path), landmarks=str(tmp_path / "landmark_embedding.npy")))
    assert embedded.landmarks_from == "landmark file" and embedded.landmarks_sha256 is not None
    assert torch.allclose(embedded.model.landmark_points(embedded.model.neutral), truth, atol=1e-5)


def test_the_correspondence_is_cached_by_the_files_digests(loaded, flame_2020, flame_cache, monkeypatch, tmp_path):
    cached = list((flame_cache / "flame-correspondence").glob("*.npz"))
    assert cached, "the first load writes the cache"
    load_flame_model.cache_clear()
    monkeypatch.setattr(transfer, "compute_correspondence", lambda *a: pytest.fail("recomputed despite the cache"))
    again = load_flame_model(FlameSource(str(flame_2020.path)))
    assert torch.equal(again.model.expression_basis, loaded.model.expression_basis)
    other = write_flame(tmp_path / "other.pkl", "2020", seed=1)  # another head: another digest, another cache entry
    with pytest.raises(pytest.fail.Exception, match="recomputed"):
        load_flame_model(FlameSource(str(other.path)))


def test_the_jaw_joint_opens_the_mouth_and_rig_guards_flames_margins(loaded):
    model = loaded.model
    rig = AURig(model)
    assert [m.region for m in rig.margins] == ["eye_left", "eye_right", "lips"]
    (jaw,) = model.joint_shapes
    assert jaw.name == "jawOpen" and jaw.joint == 2 and 0.05 < jaw.rotation[0] < 0.6
    verts = rig.vertices(torch.zeros(100), [{}, {"AU27": 5}, {"AU26": 5}, {"AU43": 1}, {"AU4": 5}])
    points = model.landmark_points(verts)
    mouth = points[:, 62, 1] - points[:, 66, 1]  # inner upper lip above inner lower lip
    assert mouth[1] > mouth[2] > mouth[0] + 0.3  # AU27 opens wider than AU26, both by the jaw joint
    eyes = points[:, [37, 38, 43, 44], 1] - points[:, [41, 40, 47, 46], 1]
    assert (eyes[3] < 0.15).all() and (eyes[0] > 0.5).all()  # AU43 closes both eyes
    assert points[4, 17:27, 1].mean() < points[0, 17:27, 1].mean() - 0.1  # AU4 lowers the brows
    eyeballs = model.layout.eyeballs
    assert verts[3, eyeballs, 2].max() < verts[0, eyeballs, 2].max() - 2.5  # a closed lid pushes its eyeball back

    rng = np.random.default_rng(7)
    aus_list = [{au: int(rng.integers(0, max_intensity(au) + 1)) for au in RIG_AUS} for _ in range(200)]
    identity = torch.as_tensor(np.clip(rng.standard_normal((200, 100)), -3, 3), dtype=torch.float32)
    guarded = rig.vertices(identity, aus_list)
    no_expression = model.vertices(identity, torch.zeros(200, model.num_expressions))
    unguarded = model.vertices(identity, rig.expression_weights(aus_list))
    crossed_without_guard = False
    for margin, floor in zip(rig.margins, rig.gap_floors(no_expression)):
        rest = margin.gaps(no_expression)
        assert float((margin.gaps(guarded) - rest - floor).min()) > -0.002, margin.region
        crossed_without_guard |= bool((margin.gaps(unguarded) - rest - floor).min() < -0.1)
    assert crossed_without_guard, "the sample never exercised the guard"


def test_identities_are_sampled_from_flames_shape_space(loaded):
    model = loaded.model
    assert model.num_identity == 300 and model.name == "flame"
    specs = [plan_identity(k, seed=5, config=PlanConfig(identity_modes=300)) for k in range(2)]
    assert specs[0].identity == plan_identity(0, seed=5, config=PlanConfig(identity_modes=300)).identity  # seeded
    faces = model.vertices(torch.tensor([s.identity for s in specs]), torch.zeros(2, model.num_expressions))
    assert float((faces[0] - faces[1]).norm(dim=1).max()) > 0.3  # two people, centimetres apart somewhere
    with pytest.raises(ConfigError, match="ICT face model has 100 identity modes"):
        GenerateConfig(identities=1, out="x", plan=PlanConfig(identity_modes=300))
