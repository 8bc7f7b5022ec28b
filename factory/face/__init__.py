"""The face: the morphable model, the AU rig that poses it, and the texturers that paint it."""
