"""Where each PSPI action unit shows on a face: the Multi-PIE landmarks (0-based) it moves, and those whose box is
its region. Shared by the AU-visibility measurements (factory/qa/visibility.py) and the occluders' per-AU visibility
in meta.json (factory/run/bedside.py)."""

BROWS, NOSE, EYES = list(range(17, 27)), list(range(27, 36)), list(range(36, 48))
UPPER_LIP = [48, 49, 50, 51, 52, 53, 54, 61, 62, 63]
AU_LANDMARKS = {"AU4": BROWS, "AU6": EYES, "AU7": EYES, "AU9": NOSE, "AU10": UPPER_LIP, "AU43": EYES}
AU_REGIONS = {
    "AU4": BROWS + [27],  # brows and the glabella between them
    "AU6": EYES + [1, 15, 30],  # eyes, lower lids and cheeks down to the nose tip, out to the face's sides
    "AU7": EYES,
    "AU9": [21, 22] + NOSE,  # nose and nose root
    "AU10": [31, 35] + UPPER_LIP + [2, 14],  # upper lip and the nasolabial folds
    "AU43": EYES,
}
REGION_PAD = 0.15  # a region's box is padded by this share of its size
