"""UNBC-McMaster: the loader on a small archive the test writes in the standard layout, the subject-wise
splits, and fine-tuning from a synthetic-pretrained checkpoint with `trainer fit --unbc`."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from trainer.unbc import UnbcPairs, neutral_references, scan_frames

SUBJECTS = [f"0{n}-ab{n}" for n in range(40, 46)]  # six subjects, as in "042-ll042"


def write_archive(root, frames_per_sequence=4):
    """Images/<subject>/<sequence>/<frame>.png, Frame_Labels/PSPI/…_facs.txt, Frame_Labels/FACS/…_facs.txt."""
    for s, subject in enumerate(SUBJECTS):
        for q in range(2):
            sequence = f"{subject.split('-')[1]}t{q}"
            for f in range(frames_per_sequence):
                frame = f"{sequence}{f:03d}"
                pspi = 0 if f == 0 or (s == 0 and q == 1) else (s + q + f) % 7  # subject 0's second sequence: all neutral
                if s == 1 and q == 1 and f == 0:
                    pspi = 3  # subject 1's second sequence has no neutral frame: its reference comes from sequence 0
                directory = root / "Images" / subject / sequence
                directory.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((24, 24, 3), 10 * pspi + s, np.uint8)).save(directory / f"{frame}.png")
                for kind, text in (("PSPI", f"   {pspi:.7e}\n"), ("FACS", f"   4.0000000e+00   {min(pspi, 5):.7e}   0   0\n   4.3000000e+01   1.0000000e+00\n")):
                    label = root / "Frame_Labels" / kind / subject / sequence
                    label.mkdir(parents=True, exist_ok=True)
                    (label / f"{frame}_facs.txt").write_text(text if pspi else "" if kind == "FACS" else text)
    return root


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return write_archive(tmp_path_factory.mktemp("unbc") / "UNBC")


def test_frames_and_labels_are_read(archive):
    frames = scan_frames(archive)
    assert len(frames) == len(SUBJECTS) * 2 * 4
    painful = next(f for f in frames if f.pspi > 0)
    assert painful.aus == {"AU4": min(painful.pspi, 5), "AU43": 1.0}
    assert next(f for f in frames if f.pspi == 0).aus == {}


def test_neutral_references_come_from_the_same_subject_at_pspi_zero(archive):
    frames = scan_frames(archive)
    references = neutral_references(frames)
    by_image = {f.image: f for f in frames}
    neutral_count = {s: sum(f.subject == s and f.pspi == 0 for f in frames) for s in SUBJECTS}
    assert neutral_count[SUBJECTS[1]] == 1  # its one neutral frame can only be paired with itself
    for frame in frames:
        reference = by_image[references[frame.image]]
        assert reference.subject == frame.subject and reference.pspi == 0
        assert reference.image != frame.image or neutral_count[frame.subject] == 1
    # A sequence without a neutral frame borrows the subject's first neutral frame.
    orphan = next(f for f in frames if f.subject == SUBJECTS[1] and f.sequence.endswith("t1"))
    assert by_image[references[orphan.image]].sequence.endswith("t0")


@pytest.mark.parametrize("protocol,folds", [("kfold", 3), ("loso", 0)])
def test_splits_are_subject_wise_and_each_subject_is_tested_once(archive, protocol, folds):
    count = folds if protocol == "kfold" else len(SUBJECTS)
    tested = []
    for fold in range(count):
        source = UnbcPairs(str(archive), fold=fold, folds=max(folds, 3), protocol=protocol)
        subjects = {split: set(source.subjects(split)) for split in ("train", "val", "test")}
        assert not subjects["train"] & subjects["test"] and not subjects["val"] & subjects["test"] and not subjects["train"] & subjects["val"]
        assert set().union(*subjects.values()) == set(SUBJECTS)
        tested += sorted(subjects["test"])
        assert {p.key.split("/")[0] for p in source.pairs("test")} == subjects["test"]
    assert sorted(tested) == sorted(SUBJECTS)


def test_bad_folds_and_missing_layout_are_named(tmp_path, archive):
    with pytest.raises(ValueError, match="fold 5 of 5"):
        UnbcPairs(str(archive), fold=5, folds=5)
    with pytest.raises(ValueError, match="cannot make 7 folds"):
        UnbcPairs(str(archive), fold=0, folds=7).subjects("test")
    with pytest.raises(FileNotFoundError, match="not an UNBC-McMaster folder"):
        scan_frames(tmp_path)


def test_fit_fine_tunes_from_a_synthetic_checkpoint(archive, tmp_path, ray_local):
    import torch

    from trainer.checkpoint import read_info, save_checkpoint
    from trainer.cli import app
    from trainer.models import BackboneConfig, create_model

    backbone = BackboneConfig(name="vit_tiny_patch16_224", image_size=32, overrides={"depth": 1, "embed_dim": 32, "num_heads": 2})
    torch.manual_seed(0)
    pretrained = create_model("vit-diff", backbone, fusion_heads=2)
    synthetic = tmp_path / "synthetic" / "checkpoint_epoch0004"
    synthetic.mkdir(parents=True)
    save_checkpoint(synthetic, pretrained, {"model": "vit-diff", "backbone": backbone.to_dict(), "fusion_heads": 2,
                                            "mean": [0.5] * 3, "std": [0.5] * 3, "epoch": 4})
    run = tmp_path / "unbc-run"
    result = CliRunner().invoke(app, ["fit", "--unbc", str(archive), "--fold", "1", "--folds", "3", "--init", str(tmp_path / "synthetic"),
                                      "--out", str(run), "--epochs", "1", "--batch-size", "4", "--workers", "1", "--no-augment"])
    assert result.exit_code == 0, result.output
    info = read_info(run / "checkpoint_epoch0000")
    assert info["model"] == "vit-diff" and info["backbone"]["overrides"]["embed_dim"] == 32
    assert info["source"] == {"kind": "unbc-mcmaster", "root": str(archive), "fold": 1, "folds": 3, "protocol": "kfold", "seed": 0}
    tuned = torch.load(run / "checkpoint_epoch0000" / "model.pt", weights_only=True)
    start = pretrained.state_dict()
    assert all(tuned[name].shape == start[name].shape for name in start)
    assert not torch.equal(tuned["heads.thresholds.weight"], start["heads.thresholds.weight"])  # it trained from there
    evaluated = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(run), "--unbc", str(archive), "--fold", "1", "--folds", "3", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.stdout)  # progress bars go to stderr
    assert metrics["n"] == len(UnbcPairs(str(archive), fold=1, folds=3).subjects("test")) * 8
    assert set(metrics["mae_by_group"]["subject"]) == set(UnbcPairs(str(archive), fold=1, folds=3).subjects("test"))
