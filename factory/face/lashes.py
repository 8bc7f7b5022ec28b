"""Eyelashes: the face model's lash cards, with a procedural strand texture, drawn as a see-through overlay.

ICT's lashes are twelve cards (three stacked on each lid), strips whose UVs tile 6 lays out one above the other:
u runs along the lid, v from one long edge of the strip to the other. Upstream cuts lashes out of them with an
alpha texture that is not part of the model's data, and drawn opaque the cards look like dark goggles, so the
mesh renderer leaves them out. Here the cards keep their shape and motion (the blink shapes move them with the
lids) and get a texture of their own: per card, strands rising from the root edge (the one nearer the lid margin)
with seeded roots, lengths and a drift toward the outer corner, thinning toward their tips and sparser at the
corners; lower lids get fewer, shorter strands. factory/render/overlay.py blends them over the view by coverage.
A face model without lash cards (FLAME) has no lashes: `lash_cards` gives None for it.

    lashes = lash_cards(model)
    overlay = Overlay(lashes.meshes(verts), lashes.texture(hair_linear))
"""

from __future__ import annotations

import numpy as np
import torch

from factory.face.geometry import smoothstep
from factory.face.model import FaceModel
from factory.face.topology import connected_components, find_margins, unique_edges
from factory.render.mesh import Meshes

LASH_TEXTURE_SIZE = 256
STRAND_SEED = 0x1A5E  # one fixed set of strands for every face: lashes differ by colour and by the lids' shape
STRANDS = {"upper": 70, "lower": 24}  # per card; three cards per lid
LENGTH = {"upper": (0.55, 1.0), "lower": (0.3, 0.65)}  # strand length as a share of the card's width
STRAND_WIDTH = 0.006  # half-width at the root, as a share of the card's length (about 0.3 mm)
DRIFT = 0.025  # how far a strand's tip leans toward the card's outer end
COVERAGE = {"upper": 0.75, "lower": 0.5}  # the most of a pixel the strands cover


def lash_cards(model: FaceModel) -> "LashCards | None":
    """The model's lash cards (the triangles of its "lashes" part), or None when it has none."""
    if "lashes" not in model.part_names:
        return None
    on_card = model.face_part == model.part_names.index("lashes")
    return LashCards(model, on_card) if bool(on_card.any()) else None


class LashCards:
    """The lash cards of one face model: their triangles, UVs in the lash texture, and its strand pattern."""

    def __init__(self, model: FaceModel, on_card: torch.Tensor):
        """`on_card` (F,) bool: the model's triangles that make the cards."""
        cards = model.faces[on_card]
        self.vertex_ids = cards.unique()  # sorted
        self.faces = torch.searchsorted(self.vertex_ids, cards)  # numbered among the cards' vertices
        uvs = model.uvs[model.face_uvs[on_card]]  # (F, 3, 2); ICT: u in tile 6
        self.corner_uvs = torch.stack([uvs[..., 0] - uvs[..., 0].min().floor(), uvs[..., 1]], dim=-1)  # u from the tile's edge
        self.face_part = torch.full((len(cards),), model.part_names.index("lashes"))
        self.coverage = strand_coverage(model, cards, self.corner_uvs)

    def meshes(self, verts: torch.Tensor) -> Meshes:
        """The lash cards of posed meshes (N, V, 3) as overlay meshes."""
        return Meshes(verts[:, self.vertex_ids.to(verts.device)], self.faces.to(verts.device), self.corner_uvs.to(verts.device),
                      self.face_part.to(verts.device))

    def texture(self, colour_linear: torch.Tensor) -> torch.Tensor:
        """(S, S, 4) the lash texture in one colour (linear RGB (3,)), alpha the strands' coverage."""
        size = self.coverage.shape[0]
        return torch.cat([colour_linear.expand(size, size, 3), self.coverage[..., None]], dim=-1)


def strand_coverage(model: FaceModel, cards: torch.Tensor, uvs: torch.Tensor) -> torch.Tensor:
    """(S, S) coverage of the lash texture: strands painted into each card's strip (`uvs` (F, 3, 2): the cards'
    corners, u from the tile's edge)."""
    size = LASH_TEXTURE_SIZE
    coverage = torch.zeros(size, size)
    rng = np.random.default_rng(STRAND_SEED)
    v_grid = (size - 1 - torch.arange(size)).float().add(0.5) / size  # row 0 is v = 1
    u_grid = torch.arange(size).float().add(0.5) / size
    for lid, v_low, v_high, root_at_low in card_strips(model, cards, uvs):
        u_low, u_high = float(uvs[..., 0].min()), float(uvs[..., 0].max())
        rows = (v_grid >= v_low) & (v_grid <= v_high)
        along = ((u_grid - u_low) / (u_high - u_low))[None, :]  # (1, S) 0..1 along the lid
        across = ((v_grid[rows] - v_low) / (v_high - v_low))[:, None]  # (R, 1) 0..1 across the strip
        t = across if root_at_low else 1 - across  # 0 at the root
        strands = torch.zeros(int(rows.sum()), size)
        for _ in range(STRANDS[lid]):
            root = float(rng.uniform(0.02, 0.98))
            length = float(rng.uniform(*LENGTH[lid]))
            lean = float(rng.normal(1.0, 0.3)) * DRIFT * (1 if root > 0.5 else -1) * abs(root - 0.5) * 2
            centre = root + lean * (t / length) ** 2
            width = STRAND_WIDTH * (1 - 0.7 * (t / length).clamp(max=1))
            strands = strands + torch.exp(-0.5 * ((along - centre) / width) ** 2) * (t < length).float()
        density = smoothstep(0.0, 0.12, along) * smoothstep(1.0, 0.9, along)
        coverage[rows] = torch.maximum(coverage[rows], (strands * density).clamp(0, 1) * COVERAGE[lid])
    return coverage


def card_strips(model: FaceModel, cards: torch.Tensor, uvs: torch.Tensor) -> list[tuple[str, float, float, bool]]:
    """Per lash card: which lid it is on ("upper"/"lower"), its strip of v in the lash texture, and whether its root
    (the long edge nearer that lid's margin) is at the strip's low v."""
    neutral = model.neutral
    margins = {m.region: m for m in find_margins(model)}
    edges = unique_edges(cards)
    vertex_v = torch.zeros(model.num_vertices)
    vertex_v[cards.reshape(-1)] = uvs[..., 1].reshape(-1)
    strips = []
    for component in connected_components(edges.numpy()):
        ids = torch.tensor(sorted(component))
        points = neutral[ids]
        margin = margins["eye_left" if float(points[:, 0].mean()) > 0 else "eye_right"]
        eye_middle = float(neutral[margin.upper, 1].mean() + neutral[margin.lower, 1].mean()) / 2
        lid = "upper" if float(points[:, 1].mean()) > eye_middle else "lower"
        rim = neutral[margin.upper if lid == "upper" else margin.lower]
        v = vertex_v[ids]
        v_low, v_high = float(v.min()), float(v.max())
        nearest = torch.cdist(points, rim).min(dim=1).values
        low_side, high_side = v < (v_low + v_high) / 2, v >= (v_low + v_high) / 2
        strips.append((lid, v_low, v_high, bool(nearest[low_side].mean() < nearest[high_side].mean())))
    return strips
