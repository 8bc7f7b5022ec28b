"""The face: the morphable model (`model`: FaceModel, with `layout`, the per-model description of its parts, and an
optional `skeleton` for jointed models), ICT's layout (`ict`: vertex ranges), topology (`topology`: lid and lip
margins), the AU rig that poses any FaceModel (`rig`), which model a run uses (`source`: bundled ICT or a user's FLAME
file, `flame/`), and the texturers that paint it (`texture/`)."""
