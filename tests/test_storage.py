"""Storage: write-then-commit on a local folder and on a real S3 endpoint (moto's server on loopback)."""

from __future__ import annotations

import hashlib

import pytest

from factory.format.storage import Storage, StorageError, default_storage_options, parse_storage_options, public_storage_options


def test_storage_options_nest_parse_scalars_and_hide_credentials():
    options = parse_storage_options(["endpoint_url=http://127.0.0.1:9000", "key=AKIA", "secret=s3cr3t", "anon=false",
                                     "client_kwargs.region_name=eu-west-1", "default_block_size=5242880"])
    assert options == {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"},
                       "key": "AKIA", "secret": "s3cr3t", "anon": False, "default_block_size": 5242880}
    public = public_storage_options({**options, "token": "t", "client_kwargs": {**options["client_kwargs"], "aws_secret_access_key": "x"}})
    assert "AKIA" not in str(public) and "s3cr3t" not in str(public) and "'x'" not in str(public)
    assert public["client_kwargs"]["endpoint_url"] == "http://127.0.0.1:9000"
    with pytest.raises(ValueError, match="key=value"):
        parse_storage_options(["no-equals-sign"])


@pytest.mark.parametrize("relative", ["../outside", "/etc/passwd", "shards/../../x", "c:\\windows"])
def test_paths_cannot_leave_the_dataset(tmp_path, relative):
    with pytest.raises(StorageError, match="inside the dataset"):
        Storage(str(tmp_path)).path(relative)


def test_local_commit_appears_only_when_complete(tmp_path):
    storage = Storage(str(tmp_path / "ds"))
    with storage.committing("shards/a.tar") as handle:
        handle.write(b"hello ")
        assert not (tmp_path / "ds/shards/a.tar").exists()  # not visible while being written
        handle.write(b"world")
    assert (tmp_path / "ds/shards/a.tar").read_bytes() == b"hello world"
    assert (handle.size, handle.sha256) == (11, hashlib.sha256(b"hello world").hexdigest())
    assert sorted(p.name for p in (tmp_path / "ds/shards").iterdir()) == ["a.tar"]


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path):
    storage = Storage(f"file://{tmp_path}")
    storage.write_bytes("manifest.json", b"old")
    with pytest.raises(RuntimeError, match="renderer crashed"):
        with storage.committing("manifest.json") as handle:
            handle.write(b"new but incomplete")
            raise RuntimeError("renderer crashed")
    assert storage.read_bytes("manifest.json") == b"old"
    assert [p.name for p in tmp_path.rglob("*") if not p.is_dir()] == ["manifest.json"]  # no partial file left


def test_unwritable_destination_is_a_clear_error(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(StorageError, match="cannot write .*a-file/out/manifest.json"):
        Storage(str(tmp_path / "a-file" / "out")).write_bytes("manifest.json", b"{}")


def test_s3_commit_is_invisible_until_complete_and_uses_the_environment_endpoint(s3):
    url = f"s3://{s3.bucket}/ds"
    options = default_storage_options(url)  # from AWS_ENDPOINT_URL(_S3), set by the fixture
    assert options == {"client_kwargs": {"endpoint_url": s3.url}}
    storage = Storage(url, options)
    fs = s3.filesystem()
    with storage.committing("shards/a.tar") as handle:
        handle.write(b"x" * 1000)
        assert not fs.exists(f"{s3.bucket}/ds/shards/a.tar")
    fs.invalidate_cache()
    assert fs.cat_file(f"{s3.bucket}/ds/shards/a.tar") == b"x" * 1000
    assert fs.ls(f"{s3.bucket}/ds/shards", detail=False) == [f"{s3.bucket}/ds/shards/a.tar"]  # no .partial left
    with pytest.raises(RuntimeError):
        with storage.committing("shards/b.tar") as handle:
            handle.write(b"y")
            raise RuntimeError("worker died")
    fs.invalidate_cache()
    assert not fs.exists(f"{s3.bucket}/ds/shards/b.tar") and fs.find(f"{s3.bucket}/ds/.partial") == []


def test_s3_server_down_is_a_clear_error_without_credentials(s3):
    fail_fast = {"config_kwargs": {"retries": {"max_attempts": 1}}}  # botocore would retry a refused connection
    storage = Storage(f"s3://{s3.bucket}/ds", {"key": "AKIDSECRETVALUE", "secret": "VERYSECRET", "client_kwargs": {"endpoint_url": s3.url}, **fail_fast})
    storage.write_bytes("manifest.json", b"{}")
    s3.stop()
    with pytest.raises(StorageError) as caught:
        storage.write_bytes("manifest.json", b"{} ")
    assert f"s3://{s3.bucket}/ds/manifest.json" in str(caught.value)
    assert "VERYSECRET" not in str(caught.value) and "AKIDSECRETVALUE" not in str(caught.value)


def test_two_writers_of_one_file_never_share_a_partial(tmp_path):
    """Each writer's partial file carries its identity; the old shared `<name>.partial` let two drivers truncate
    and move each other's half-written shard."""
    a, b = Storage(str(tmp_path), writer="driver-a"), Storage(str(tmp_path), writer="driver-b")
    with a.committing("shards/x.tar") as first, b.committing("shards/x.tar") as second:
        first.write(b"a" * 10)
        second.write(b"b" * 10)
        partials = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.partial") if p.is_file())
        assert partials == [".partial/driver-a/shards/x.tar.partial", ".partial/driver-b/shards/x.tar.partial"]
    assert (tmp_path / "shards/x.tar").read_bytes() == b"a" * 10  # both committed whole; the last one stays
    assert Storage(str(tmp_path)).writer != Storage(str(tmp_path)).writer  # by default every Storage is a writer of its own


def test_a_storage_option_of_the_wrong_type_is_named_without_its_value(s3):
    storage = Storage(f"s3://{s3.bucket}/ds", {"secret": "VERYSECRET", "client_kwargs": {"endpoint_url": s3.url, "region_name": 7}})
    with pytest.raises(StorageError) as caught:
        storage.read_bytes("manifest.json")
    message = str(caught.value)
    assert "TypeError" in message and "given: secret, client_kwargs.endpoint_url, client_kwargs.region_name" in message
    assert "VERYSECRET" not in message and "\n" not in message
