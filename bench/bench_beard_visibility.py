"""How much facial hair hides AU9 and AU10: bearded identities swept with their planned facial hair and clean-shaven.

    python bench/bench_beard_visibility.py [--identities 0:2,0:11] [--image-size 256]

For every identity (seed:index, its frontal view) `factory.qa.visibility.au_sweep` renders each PSPI AU alone at
levels 1…5 against its neutral face twice: as planned (a beard or a moustache) and with `hair.facial = "none"`,
everything else equal. AU9 (nose wrinkles, raised nose wings) and AU10 (raised upper lip, deepened nasolabial
fold) are the AUs a moustache lies over. Printed per level: their pixel change (mean |Δ RGB| in the AU's region,
0–255) on the bearded face, and its ratio to the clean-shaven face's; the share of each AU's region that shows the
facial-hair shell at level 5 (`hair_share`); the hair's cover of where the evidence is (`evidence_cover`: mean
strand coverage over the nasolabial folds, the nose wings and the skin under the nostrils). Pixel change alone
cannot tell hiding from showing: moving hair changes pixels too, so a bearded face's change can exceed the shaved
one's while the skin's signs are covered; the cover says where the hair lies. bench/RESULTS.md "AU visibility
under facial hair" holds the table for the code before and after the facial hair was fitted to the AUs (the
script run on each tree).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results import RESULTS, machine  # noqa: E402  (bench/results.py, beside this script)

from factory.qa.visibility import AU_REGIONS, au_sweep, region_box, sweep_expressions  # noqa: E402
from factory.render.mesh import vertex_normals  # noqa: E402
from factory.run.identity import IdentityRenderer, RenderConfig  # noqa: E402
from factory.spec.plan import plan_identity  # noqa: E402

SECTION = "## AU visibility under facial hair"
AUS = ("AU9", "AU10")
WING_RIGHT, WING_LEFT, NOSE_BASE, MOUTH_RIGHT, MOUTH_LEFT = 31, 35, 33, 48, 54


def evidence_cover(renderer: IdentityRenderer, spec) -> float:
    """Mean hair coverage over the face vertices where AU9 and AU10 show: within 0.6 cm of the lines from each nose
    wing to its mouth corner (the nasolabial folds), or within 0.8 cm of a nose wing or the nose's base. A vertex's
    coverage is the largest of its own (stubble) and that of the shell vertices pushed out from it."""
    model = renderer.model
    neutral = model.neutral
    lm = neutral[model.landmarks]
    face = renderer.pose(spec).verts[:1]
    geometry = renderer.hair.build(spec.hair, face, vertex_normals(face, renderer.faces))
    coverage = geometry.attributes[: model.num_vertices, 0].clone()
    shell = geometry.attributes[model.num_vertices:, 0]
    coverage.scatter_reduce_(0, geometry.source, shell, reduce="amax")
    near = torch.zeros(len(neutral), dtype=torch.bool)
    for wing, corner in ((WING_RIGHT, MOUTH_RIGHT), (WING_LEFT, MOUTH_LEFT)):
        a, b = lm[wing, :2], lm[corner, :2]
        t = ((neutral[:, :2] - a) @ (b - a) / (b - a).square().sum()).clamp(0, 1)
        near |= (neutral[:, :2] - (a + t[:, None] * (b - a))).norm(dim=-1) < 0.6
        near |= (neutral[:, :2] - a).norm(dim=-1) < 0.8
    near |= (neutral[:, :2] - lm[NOSE_BASE, :2]).norm(dim=-1) < 0.8
    near &= (neutral[:, 2] > float(lm[MOUTH_RIGHT, 2]) - 1.5) & model.layout.skin
    return float(coverage[near].mean())


def hair_share(renderer: IdentityRenderer, spec) -> dict[str, float]:
    """Per AU, the share of its region's pixels (frontal, the neutral face's box) that show the facial-hair shell
    (sparse or dense) with the AU alone at level 5."""
    expressions = [e for e in sweep_expressions() if e.name in ("neutral", *(f"{au}_5" for au in AUS))]
    layers = renderer.render(dataclasses.replace(spec, expressions=tuple(expressions)))
    hair = layers["segmentation"][:, 0] == renderer.part_names.index("facial_hair")
    shares = {}
    for row, au in enumerate(AUS, start=1):
        top, bottom, left, right = region_box(layers["landmarks_2d"][0, 0, AU_REGIONS[au]], hair.shape[1])
        shares[au] = float(hair[row, top:bottom, left:right].mean())
    return shares


def measure(renderer: IdentityRenderer, spec) -> tuple[dict[str, np.ndarray], dict[str, float], float]:
    spec = dataclasses.replace(spec, views=spec.views[:1])
    sweep = au_sweep(renderer, spec)
    return ({au: sweep.pixel_change[au][:, 0] for au in AUS}, hair_share(renderer, spec),
            evidence_cover(renderer, spec))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", default="0:2,0:11", help="seed:index pairs of men with facial hair")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--label", default="", help="what code this is (printed with the table)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    renderer = IdentityRenderer(RenderConfig(image_size=args.image_size, texture_size=1024, backend="torch"))
    rows = ["| identity | facial hair | AU | level 1 | level 2 | level 3 | level 4 | level 5 | shaved: level 5 | "
            "bearded / shaved (mean) | facial hair in the region at level 5 | hair cover of the evidence |", "|---" * 12 + "|"]
    for pair in args.identities.split(","):
        seed, index = (int(part) for part in pair.split(":"))
        spec = plan_identity(index, seed=seed)
        started = time.process_time()
        bearded, share, cover = measure(renderer, spec)
        shaved, _, _ = measure(renderer, dataclasses.replace(spec, hair=dataclasses.replace(spec.hair, facial="none")))
        print(f"{seed}:{index}: {time.process_time() - started:.0f} s CPU", flush=True)
        for au in AUS:
            cells = " | ".join(f"{v:.2f}" for v in bearded[au])
            ratio = float(bearded[au].mean() / shaved[au].mean())
            rows.append(f"| {seed}:{index} | {spec.hair.facial} {spec.hair.facial_length_cm:.2f} cm | {au} | {cells} | "
                        f"{shaved[au][-1]:.2f} | {ratio:.2f} | {share[au]:.3f} | {cover:.3f} |")
    print(f"{args.label} on {machine()}, {args.image_size} px frontal", "\n".join(rows), sep="\n")
    print(f"(the {SECTION!r} section of {RESULTS} holds these tables, before and after its change, by hand)")


if __name__ == "__main__":
    main()
