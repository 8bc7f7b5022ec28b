"""The face: the morphable model (`model`: FaceModel, with `layout`, the per-model description of its parts, and an
optional `skeleton` for jointed models), ICT's layout (`ict`: vertex ranges), topology (`topology`: lid and lip
margins), the AU rig that poses any FaceModel (`rig`), which model a run uses (`source`: bundled ICT or a user's FLAME
file, `flame/`), the texturers that paint it (`texture/`), its hair (`hair`: where facial hair grows and how strands
flow; `hair_shell`: the hair's geometry) and its skin's regional gloss (`shine`)."""
