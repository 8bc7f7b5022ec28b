"""The face: the morphable model (`model`), its ICT layout (`ict`: vertex ranges) and topology (`topology`: lid and
lip margins), the AU rig that poses it (`rig`), and the texturers that paint it (`texture/`)."""
