"""FLAME, the paper's face model, from a file the user brings (it cannot be shipped).

`files` reads FLAME model files (`.pkl` through the restricted unpickler in `unpickle`, or `.npz`), UV layouts and
landmark embeddings; `forward` is FLAME's own forward pass in torch; `registration` lays the ICT head onto a FLAME
template and `transfer` turns that into a dense correspondence (cached by the file's sha256) that carries ICT's
expression shapes to FLAME; `model` assembles the FaceModel that the rig, texturers and renderer use; `surface`
holds the mesh geometry they share (closest points, normals, similarity fits).
"""
