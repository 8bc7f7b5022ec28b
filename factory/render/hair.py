"""Hair as the shader draws it: strands over the parts of a surface that carry hair, with an anisotropic sheen.

    hair = HairLayer(attributes, colour=linear_rgb, strand_cm=0.05, table=HairLayer.table_for(seed))
    strands = hair.strands(hair_attributes_at_pixels, pixel_cm)    # alpha, albedo, tangent, brightness, shine
    sheen = hair.sheen(strands.tangent, normal, half_vector)

Geometry (shells offset from the scalp, a beard over the jaw) is made elsewhere; here every vertex carries
HAIR_CHANNELS numbers, shared by all meshes of a batch, which the shader interpolates at the pixels of the triangles
that have any hair:
- coverage 0..1: none (bare skin), sparse (a hairline, stubble) or full;
- the flow tangent (3): the direction the strands run in, from root to tip;
- across and along (cm): coordinates across the strands and along them. Strands are 1D value noise in `across`
  (one random value per STRAND_CM), broken every `segment` cm along `along` (long on the scalp, a fraction of a
  millimetre for stubble, which then reads as dots), plus a coarser noise for clumps;
- segment (cm): how long a strand runs before its brightness changes.
At a pixel larger than a strand the strand noise fades to its mean, so distant or small renders show a smooth
sheen instead of aliasing. The sheen is Kajiya–Kay's: two lobes around the tangent (a white one, and one tinted by
the hair shifted toward the tip), which is what makes hair look like hair rather than paint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

HAIR_CHANNELS = 7  # coverage, tangent xyz, across, along, segment
TABLE_SIZE = 4096  # a power of two: table_lookup wraps indices with a mask
CLUMP_STRANDS, LOCK_STRANDS = 7, 30  # strands per clump, and per lock (broad streaks that survive small renders)
FINE_WEIGHT, CLUMP_WEIGHT, LOCK_WEIGHT = 0.9, 0.7, 0.5  # contrast of each scale (noise deviations are about ±0.25)
SPARSE_CONTRAST = 10.0  # how sharply sparse hair breaks into strands
SHINY_SEGMENT_CM = 0.5  # strands shorter than this clump and shine less, in proportion
PRIMARY_SHIFT, SECONDARY_SHIFT = -0.08, 0.12  # lobe shifts along the normal (toward the root, toward the tip)
PRIMARY_EXPONENT, SECONDARY_EXPONENT = 90.0, 24.0
PRIMARY_STRENGTH, SECONDARY_STRENGTH = 0.07, 0.12


class Strands(NamedTuple):
    """Hair at Q pixels."""

    alpha: torch.Tensor  # (Q,) how much hair covers the skin there
    albedo: torch.Tensor  # (Q, 3) linear
    tangent: torch.Tensor  # (Q, 3) the flow, not yet made perpendicular to the normal
    brightness: torch.Tensor  # (Q,) 0..1: the strands' pattern
    shine: torch.Tensor  # (Q,) 0..1: how strongly they shine (less for short strands: stubble has no sheen)


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field is ambiguous
class HairLayer:
    attributes: torch.Tensor  # (V, HAIR_CHANNELS) per vertex, shared by every mesh of the batch
    colour: torch.Tensor  # (3,) linear RGB of the hair
    strand_cm: float  # width of one strand (of a lock of a few hairs) across the flow
    table: torch.Tensor  # (TABLE_SIZE,) uniform 0..1 values: the strands' brightness

    def __post_init__(self) -> None:
        if self.attributes.ndim != 2 or self.attributes.shape[1] != HAIR_CHANNELS:
            raise ValueError(f"hair attributes must be (V, {HAIR_CHANNELS}), got {tuple(self.attributes.shape)}")

    @staticmethod
    def table_for(seed: int) -> torch.Tensor:
        return torch.from_numpy(np.random.default_rng([seed, 0x4A12]).random(TABLE_SIZE, dtype=np.float32))

    def hairy_faces(self, faces: torch.Tensor) -> torch.Tensor:
        """(F,) whether any corner of each triangle has hair."""
        return (self.attributes[:, 0] > 0)[faces].any(dim=1)

    def strands(self, attributes: torch.Tensor, pixel_cm: float) -> "Strands":
        """The strands at Q pixels with interpolated attributes (Q, HAIR_CHANNELS), drawn at `pixel_cm` per pixel."""
        coverage, tangent = attributes[:, 0], attributes[:, 1:4]
        across, along, segment = attributes[:, 4], attributes[:, 5], attributes[:, 6].clamp(min=1e-3)
        table = self.table.to(attributes.device)
        strand_index = across / self.strand_cm
        offset = table_lookup(table, strand_index.floor()) * 3  # strands break at different places along their run
        strand = torch.full_like(coverage, 0.5)
        length = (segment / SHINY_SEGMENT_CM).clamp(max=1)  # short hair (stubble) neither clumps nor shines
        for width, weight, salt in ((1, FINE_WEIGHT, 97.0), (CLUMP_STRANDS, CLUMP_WEIGHT, 53.0), (LOCK_STRANDS, LOCK_WEIGHT, 29.0)):
            detail = float(np.clip(self.strand_cm * width / pixel_cm - 0.5, 0.0, 1.0))  # narrower than a pixel: blurs out
            if detail > 0:  # a clump of w strands is w times as wide and runs w times as long before it changes
                piece = torch.floor(along / (segment * width) + offset)
                noise = value_noise(table, strand_index / width + piece * salt + width * 311.0)
                strand = strand + weight * detail * (noise - 0.5) * (1 if width == 1 else length)
        # Partial coverage shows as separate strands (where `strand` is bright) with skin between them: an odd
        # function of the strand's deviation, so it averages to the coverage; full and no coverage stay as they are.
        strand = strand.clamp(0, 1)
        alpha = coverage + torch.minimum(coverage, 1 - coverage) * torch.tanh(SPARSE_CONTRAST * (strand - 0.5))
        albedo = self.colour.to(attributes) * (0.35 + 1.3 * strand)[:, None]
        return Strands(alpha, albedo, tangent, strand, strand * length)

    def sheen(self, tangent: torch.Tensor, normal: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
        """(Q, 3) Kajiya–Kay highlight per unit of light, for unit normals and half vectors (Q, 3). Each lobe's tangent
        is shifted along the normal: with T ⟂ N, (T + sN)·H = (T·H + s N·H) and |T + sN| = √(1 + s²)."""
        tangent = F.normalize(tangent - (tangent * normal).sum(-1, keepdim=True) * normal, dim=-1, eps=1e-6)
        along, up = (tangent * half).sum(-1), (normal * half).sum(-1)
        colour = self.colour.to(normal)
        lobes = []
        for shift, exponent, strength in ((PRIMARY_SHIFT, PRIMARY_EXPONENT, PRIMARY_STRENGTH),
                                          (SECONDARY_SHIFT, SECONDARY_EXPONENT, SECONDARY_STRENGTH)):
            cosine = (along + shift * up) / (1 + shift * shift) ** 0.5
            lobes.append(strength * (1 - cosine.square()).clamp(min=0) ** (exponent / 2))
        return lobes[0][:, None] + lobes[1][:, None] * (colour / colour.max().clamp(min=1e-3))


def table_lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    # TABLE_SIZE is a power of two, so `& (size - 1)` is the remainder (also of negative indices, in two's
    # complement); with index_select, 3× faster than remainder and indexing.
    return table.index_select(0, index.long().bitwise_and(len(table) - 1))


def value_noise(table: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """1D value noise: the table's values at the integers, smoothly interpolated between them (0..1)."""
    low = position.floor()
    t = position - low
    t = t * t * (3 - 2 * t)
    return torch.lerp(table_lookup(table, low), table_lookup(table, low + 1), t)
