"""The face: the morphable model (`model`), its ICT layout (`ict`: vertex ranges) and topology (`topology`: lid and
lip margins), the AU rig that poses it (`rig`), the texturers that paint it (`texture/`), its hair (`hair`: where
facial hair grows and how strands flow; `hair_shell`: the hair's geometry) and its skin's regional gloss (`shine`)."""
