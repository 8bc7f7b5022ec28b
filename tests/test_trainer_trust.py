"""The trainer trusts nothing it reads (issue 14, item 4): a bad manifest, labels that break factory/spec, a
damaged shard, a diverging loss, a failing Ray Train worker and an unusual run name each end in one clear line
(exit 2) or a correct run; only valid JSON is printed; nothing is saved from a run that went wrong."""

import json
import math
import os
import random
import tarfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from factory.format.dataset import open_dataset
from tests.trainer_shards import write_dataset
from trainer.checkpoint import save_checkpoint
from trainer.cli import app
from trainer.config import TrainConfig
from trainer.data import Augmentation, PairTransform, ShardPairs, SplitConfig, batches, identity_pairs
from trainer.models import BackboneConfig, LossWeights, create_model

runner = CliRunner()
TINY = BackboneConfig(name="vit_tiny_patch16_224", image_size=32, overrides={"depth": 1, "embed_dim": 32, "num_heads": 2})
TINY_FLAGS = ["--model", "vit", "--backbone", "vit_tiny_patch16_224", "--image-size", "32", "--depth", "1", "--embed-dim", "32",
              "--num-heads", "2", "--batch-size", "4", "--no-augment", "--epochs", "1", "--max-failures", "0"]


def strict_json(line: str) -> dict:
    """json.loads that refuses NaN and Infinity, which Python writes by default but JSON does not have."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(line, parse_constant=refuse)


def one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len([line for line in lines if line.startswith("error: ")]) == 1, result.output
    return next(line for line in lines if line.startswith("error: "))


def set_every(field: str, value, au: str | None = None):
    def edit(meta: dict) -> None:
        for expression in meta["expressions"]:
            if au is None:
                expression[field] = value
            else:
                expression[field][au] = value
    return edit


# ---------------------------------------------------------------------------------------------- manifests


def tiny_checkpoint(folder: Path) -> Path:
    """A checkpoint of an untrained tiny model, as `trainer fit` writes it (no training needed to evaluate with it)."""
    config = TrainConfig(model="vit", backbone=TINY, fusion_heads=2)
    folder.mkdir(parents=True)
    save_checkpoint(folder, create_model(config.model, config.backbone, config.fusion_heads),
                    {**config.model_info(), "epoch": 0, "source": {"split_seed": 0, "fractions": [0.5, 0.25, 0.25]}})
    return folder


@pytest.mark.parametrize("shards", [
    [{"files": {"images": {"path": 123}}}], [{"files": {"images": "123"}}], "images/shard-000000.tar", [123], None,
])
def test_fit_and_evaluate_refuse_a_bad_manifest_in_one_line(tmp_path, shards):
    """The factory's manifest reader refuses these (factory/format/manifest.py); the trainer must report them as
    one line from both commands, before Ray starts, instead of a traceback."""
    write_dataset(str(tmp_path / "data"), identities=2, image_size=32, pain_expressions=1)
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    good = manifest["shards"][0]
    if isinstance(shards, list) and shards and isinstance(shards[0], dict):
        shards = [{**good, **shards[0]}]
    (tmp_path / "data" / "manifest.json").write_text(json.dumps({**manifest, "shards": shards}))
    checkpoint = tiny_checkpoint(tmp_path / "ckpt")
    fit = runner.invoke(app, ["fit", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *TINY_FLAGS])
    evaluate = runner.invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--data", str(tmp_path / "data"), "--json"])
    for result in (fit, evaluate):
        assert "manifest" in one_error_line(result) or "shard" in one_error_line(result)
        assert not result.stdout.strip()
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------- labels and shards


@pytest.mark.parametrize("edit, message", [
    (set_every("pspi", float("nan")), "neutral: pspi nan differs from the PSPI of its AUs, AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43 = 0"),
    (set_every("aus", 1e30, au="AU4"), "AU4 must be an integer from 0 to 5, got 1e+30"),
    (set_every("aus", float("inf"), au="AU43"), "AU43 must be an integer from 0 to 1, got inf"),
    (set_every("aus", "2", au="AU6"), "AU6 must be an integer from 0 to 5, got '2'"),
    (set_every("aus", ["AU4"]), "aus must be a mapping of action units"),
    (set_every("pspi", "3"), "pspi '3' differs"),
    (lambda meta: meta["expressions"][1].update(pspi=meta["expressions"][1]["pspi"] + 1), "differs from the PSPI of its AUs"),
    (lambda meta: meta.pop("views"), "meta.json lacks or mistypes"),
    (lambda meta: meta.update(expressions="pain"), "meta.json lacks or mistypes"),
])
def test_labels_are_checked_against_the_spec_while_streaming(tmp_path, edit, message):
    """Every expression's AUs are validated by factory/spec and its PSPI must equal the PSPI of its AUs; the error
    names the shard, the identity and the expression."""
    from factory.format.sample import SampleError
    write_dataset(str(tmp_path / "data"), identities=2, image_size=32, pain_expressions=2, per_shard=2, edit_meta=edit)
    with pytest.raises(SampleError) as raised:
        list(ShardPairs(str(tmp_path / "data"), SplitConfig(fractions=(1.0, 0.0, 0.0))).pairs("train"))
    text = str(raised.value)
    assert message in text and text.startswith("images/shard-000000.tar: id-0000000") and "\n" not in text


def test_a_damaged_shard_is_refused_by_its_manifest_record(tmp_path):
    """A shard cut short (tar streaming reads it without complaint, yielding fewer samples) or changed in place
    is refused by its size and sha256 in the manifest, naming the shard."""
    from factory.format.shards import ShardError
    write_dataset(str(tmp_path / "data"), identities=4, image_size=32, pain_expressions=1, per_shard=2)
    shard = tmp_path / "data" / "images" / "shard-000001.tar"
    source = ShardPairs(str(tmp_path / "data"), SplitConfig(fractions=(1.0, 0.0, 0.0)))
    intact = shard.read_bytes()
    with tarfile.open(shard) as tar:  # cut where the second identity starts: a tar stream that ends there is valid
        cut = next(member.offset for member in tar.getmembers() if member.name.startswith("id-0000003."))
    shard.write_bytes(intact[:cut])
    with pytest.raises(ShardError, match=rf"^images/shard-000001.tar: {cut} bytes .* the manifest lists {len(intact)} bytes"):
        list(source.pairs("train"))
    changed = bytearray(intact)
    changed[-3000] ^= 1  # inside the last member's data: still a well-formed tar
    shard.write_bytes(bytes(changed))
    with pytest.raises(ShardError, match=r"^images/shard-000001.tar: .*sha256"):
        list(source.pairs("train"))
    shard.write_bytes(intact)
    assert len(list(source.pairs("train"))) == 4 * 2


def test_read_ahead_and_parallel_decoding_keep_the_order(tmp_path):
    """Pairs read ahead in a background thread come in manifest order, and batches decoded by a thread pool equal
    batches decoded one by one: same seed, same batches."""
    write_dataset(str(tmp_path / "data"), identities=6, image_size=32, pain_expressions=2, per_shard=2)
    source = ShardPairs(str(tmp_path / "data"), SplitConfig(fractions=(1.0, 0.0, 0.0)))
    plain = [pair.key for _, sample in open_dataset(str(tmp_path / "data")).samples()
             for pair in identity_pairs(sample, json.loads(sample["meta.json"]))]
    assert [pair.key for pair in source.pairs("train")] == plain
    transform = PairTransform(32, augmentation=Augmentation())
    runs = [list(batches(source.pairs("train"), transform, 4, random.Random(5), drop_last=False, decode_threads=threads))
            for threads in (1, 3)]
    assert [b["keys"] for b in runs[0]] == [b["keys"] for b in runs[1]]
    assert all(torch.equal(a["pain"], b["pain"]) and torch.equal(a["reference"], b["reference"]) for a, b in zip(*runs))


# ---------------------------------------------------------------------------------------------- training


def test_a_non_finite_loss_stops_training_before_the_weights_change():
    from trainer.train import TrainingError, train_epoch

    torch.manual_seed(0)
    model = create_model("vit", TINY, fusion_heads=2)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = {"pain": torch.zeros(2, 3, 32, 32), "reference": torch.zeros(2, 3, 32, 32), "keys": ["id-0000001/pain00.v0", "b"],
             "pspi": torch.tensor([1.0, float("inf")]), "aus": torch.zeros(2, 6)}
    with pytest.raises(TrainingError, match=r"loss is (inf|nan) at epoch 3, step 1 \(pairs id-0000001/pain00.v0, b\)"):
        train_epoch(model, optimizer, iter([batch]), LossWeights(), torch.device("cpu"), show_progress=False, epoch=3)
    assert all(torch.equal(tensor, before[name]) for name, tensor in model.state_dict().items())


def fit_cli(tmp_path: Path, data: Path, *extra: str, out: str = "run"):
    return runner.invoke(app, ["fit", "--data", str(data), "--out", str(tmp_path / out), *TINY_FLAGS, *extra])


def test_fit_stops_on_labels_that_break_the_spec_and_prints_only_json(tmp_path, ray_local):
    """With every PSPI NaN, `trainer fit` used to exit 0 and save a checkpoint whose every weight was NaN; with
    AU4 = 1e30 it printed `"train_loss": Infinity`. Now both stop in one line naming identity and expression,
    nothing is saved, and stdout holds no line that is not JSON."""
    for name, edit, message in (("nan", set_every("pspi", float("nan")), "pspi nan differs"),
                                ("huge", set_every("aus", 1e30, au="AU4"), "AU4 must be an integer from 0 to 5, got 1e+30")):
        write_dataset(str(tmp_path / name), identities=6, image_size=32, pain_expressions=2, per_shard=3, edit_meta=edit)
        result = fit_cli(tmp_path, tmp_path / name, out=f"run-{name}")
        line = one_error_line(result)
        assert line.startswith("error: training failed: images/shard-00000") and message in line and ": id-000000" in line
        assert not list((tmp_path / f"run-{name}").glob("checkpoint_epoch*"))
        for printed in result.stdout.splitlines():
            if printed.startswith("{"):
                strict_json(printed)


def test_a_failing_worker_is_reported_in_one_line(tmp_path, ray_local):
    """A worker that fails (here: a shard that is not a tar any more) ends `trainer fit` with its own one-line
    `error: training failed: …` naming the root cause, not Ray's WorkerGroupError traceback."""
    write_dataset(str(tmp_path / "data"), identities=6, image_size=32, pain_expressions=2, per_shard=3)
    shard = tmp_path / "data" / "images" / "shard-000001.tar"
    shard.write_bytes(b"\x00garbage" * (shard.stat().st_size // 8))
    line = one_error_line(fit_cli(tmp_path, tmp_path / "data"))
    assert line.startswith("error: training failed: images/shard-000001.tar: ") and "WorkerGroupError" not in line


def test_a_run_name_with_non_ascii_characters_trains_in_the_users_folder(tmp_path, ray_local):
    """Ray Train tags its metrics with the run name, and its tag encoder takes ASCII only; the run still trains
    and its checkpoints land in the folder the user named."""
    write_dataset(str(tmp_path / "data"), identities=6, image_size=32, pain_expressions=2, per_shard=3)
    result = fit_cli(tmp_path, tmp_path / "data", out="douleur-é-痛")
    assert result.exit_code == 0, result.output
    final = strict_json(result.stdout.strip().splitlines()[-1])
    assert final["checkpoint"] == str(tmp_path / "douleur-é-痛" / "checkpoint_epoch0000")
    assert (tmp_path / "douleur-é-痛" / "checkpoint_epoch0000" / "model.pt").exists()
    weights = torch.load(tmp_path / "douleur-é-痛" / "checkpoint_epoch0000" / "model.pt", weights_only=True)
    assert all(torch.isfinite(tensor).all() for tensor in weights.values() if tensor.is_floating_point())
    assert math.isfinite(final["train_loss"])


# ---------------------------------------------------------------------------- storage options and Ray's logs


def test_storage_options_reach_every_url_and_credentials_stay_in_the_driver(s3, tmp_path):
    """`trainer fit` and `evaluate` take --storage-option like the factory commands: here the S3 endpoint comes
    only from the flag (no AWS_ENDPOINT_URL), for the dataset, the run folder (Ray Train's storage) and the
    checkpoint. Credentials given by flag are used by the driver only: Ray records what Ray Train is given (with
    state tracking and the export API on, train_loop_config is written to logs/export_events; measured: the
    secret was there while the source carried it), so neither the run folder nor Ray's files may hold them;
    workers take theirs from their environment. The one exception is Ray's own record of the driver's command
    line (the job's entrypoint, read from /proc), which holds whatever flags were typed: the CLI warns about it.
    The run's output is also free of the PlacementGroupCleaner's "Failed to query Ray Train Controller" lines."""
    import subprocess
    import sys
    import tempfile

    secret, key_id = "painfactory-secret-4e1a9c", "painfactory-key-id-77d2"
    data, out = f"s3://{s3.bucket}/datasets/tiny", f"s3://{s3.bucket}/runs/tiny"
    write_dataset(data, identities=6, image_size=32, pain_expressions=2, per_shard=3)
    ray_temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_ENDPOINT_URL")}
    env |= {"RAY_TMPDIR": ray_temp, "RAY_TRAIN_ENABLE_STATE_TRACKING": "1", "RAY_enable_export_api_write": "true"}
    flags = ["--storage-option", f"endpoint_url={s3.url}", "--storage-option", f"key={key_id}", "--storage-option", f"secret={secret}"]
    try:
        fit = subprocess.run([sys.executable, "-m", "trainer", "fit", "--data", data, "--out", out, *TINY_FLAGS, *flags,
                              "--split-fractions", "0.5", "0.5", "0.0"],
                             capture_output=True, text=True, env=env, timeout=600)
        assert fit.returncode == 0, fit.stdout[-3000:] + fit.stderr[-3000:]
        assert strict_json(fit.stdout.strip().splitlines()[-1])["checkpoint"] == f"{out}/checkpoint_epoch0000"
        assert "credentials given by --storage-option are used by this process only" in fit.stderr
        assert "Failed to query Ray Train Controller actor state" not in fit.stdout + fit.stderr
        evaluate = subprocess.run([sys.executable, "-m", "trainer", "evaluate", "--checkpoint", out, "--data", data, "--split", "val",
                                   "--json", *flags], capture_output=True, text=True, env=env, timeout=300)
        assert evaluate.returncode == 0, evaluate.stderr[-3000:]
        assert strict_json(evaluate.stdout)["n"] > 0
        fs = s3.filesystem()
        run_files = fs.find(f"{s3.bucket}/runs/tiny")
        assert any(path.endswith("checkpoint_epoch0000/model.pt") for path in run_files)
        for path in run_files:
            assert secret.encode() not in fs.cat(path) and key_id.encode() not in fs.cat(path), path
        ray_files = [path for path in Path(ray_temp).rglob("*") if path.is_file() and not path.is_symlink()
                     and path.name != "event_EXPORT_DRIVER_JOB.log"]  # the driver's command line, as typed
        (train_state,) = [path for path in ray_files if path.name == "event_EXPORT_TRAIN_STATE.log"]
        assert "train_loop_config" in train_state.read_text() and s3.url in train_state.read_text()
        for path in ray_files:
            content = path.read_bytes()
            assert secret.encode() not in content and key_id.encode() not in content, path
    finally:
        subprocess.run(["rm", "-rf", ray_temp])
