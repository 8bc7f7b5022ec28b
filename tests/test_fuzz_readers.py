"""Fuzzing the readers (issue 14, "Done when"): a few hundred seeded, randomly damaged copies of a tiny dataset, each
fed to verify, inspect, preview and the trainer's reader. Every outcome must be a clean refusal (a FactoryError
with a one-line message) or a correct result (a dataset verify accepts reads everywhere), never another
exception, a hang (each case runs under a 20 s alarm) or unbounded memory (the cases run in a child process whose
address space is capped 1 GiB above what its imports take, so one allocation the size of a declared length
fails as MemoryError, which is a defect here). A few of the worst cases also go through the `factory` command
line under the same kind of cap, which must answer in one line without a traceback.

Damage: flipped bytes, truncations, member renames, huge declared sizes (tar headers, manifest records, list
lengths), bad JSON, wrong types in meta.json and manifest.json, symbolic links; half of the shard damage is
listed again in the manifest (size and sha256 updated), so the readers get past the record check to the content.
"""

from __future__ import annotations

import json
import random
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the child process runs this file directly

from tests.readers import READERS, edit_meta, relist, run_reader, tar_entries, write_entries  # noqa: E402

CASES = 300
SEED = 14
CASE_SECONDS = 20
HEADROOM = 1 << 30  # address space the child may add to what its imports take
SHARD = "images/shard-000000.tar"
ODD_VALUES = [None, True, -1, 10**30, 1e308, float("nan"), "", "x" * 5000, [], {}, [[[]]], {"name": {}}, "../../etc/passwd"]
MEMBER_NAMES = ["evil.sh", "../x.jpg", "neutral.v0.png", "pain00.v99.jpg", "a" * 300, "meta.json", "neutral..jpg", "mesh.obj"]


# ------------------------------------------------------------------------------------------------ damage


def flip_bytes(root: Path, rng: random.Random) -> str:
    data = bytearray((root / SHARD).read_bytes())
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    (root / SHARD).write_bytes(bytes(data))
    return "flipped bytes"


def truncate(root: Path, rng: random.Random) -> str:
    data = (root / SHARD).read_bytes()
    (root / SHARD).write_bytes(data[: rng.randrange(len(data))])
    return "truncated shard"


def rename_member(root: Path, rng: random.Random) -> str:
    entries = tar_entries(root / SHARD)
    number = rng.randrange(len(entries))
    entry = entries[number][0]
    name = rng.choice(MEMBER_NAMES)
    entries[number] = (entry.replace(name=f"{entry.name.split('.')[0]}.{name}"), entries[number][1])
    write_entries(root / SHARD, entries)
    return f"renamed {entry.name} to {name}"


def huge_tar_size(root: Path, rng: random.Random) -> str:
    """A tar header announcing a member of up to 8 GiB - 1 (checksum fixed, so tarfile believes it)."""
    data = bytearray((root / SHARD).read_bytes())
    offset = 512 * rng.randrange(len(data) // 512 - 2)
    size = rng.choice([2**31, 8**11 - 1, 17 << 20, 65 << 20])
    data[offset + 124: offset + 136] = f"{size:011o}\0".encode()
    data[offset + 148: offset + 156] = b" " * 8
    data[offset + 148: offset + 156] = f"{sum(data[offset: offset + 512]):06o}\0 ".encode()
    (root / SHARD).write_bytes(bytes(data))
    return f"tar header at {offset} announces {size} bytes"


def huge_extended_header(root: Path, rng: random.Random) -> str:
    entries = tar_entries(root / SHARD)
    long_name = tarfile.TarInfo("././@LongLink")
    long_name.type = tarfile.GNUTYPE_LONGNAME
    write_entries(root / SHARD, [(long_name, b"x" * rng.choice([100_000, 2_000_000])), *entries])
    return "a GNU long-name header of megabytes"


def bad_meta(root: Path, rng: random.Random) -> str:
    """meta.json with a random field set to an odd value, a list grown huge, or replaced by bad JSON."""
    choice = rng.randrange(4)
    if choice == 0:
        path = rng.choice([("demographics",), ("demographics", "age"), ("skin", "fitzpatrick"), ("id",), ("expressions",),
                           ("views",), ("expressions", 1, "aus"), ("expressions", 0, "pspi"), ("expressions", 1, "name"),
                           ("views", 0, "name"), ("expressions", 1, "aus", "AU4"), ("light",), ("generator",)])
        value = rng.choice(ODD_VALUES)

        def change(meta):
            target = meta
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = value
        edit_meta(root, change)
        return f"meta.json {path} = {str(value)[:40]!r}"
    if choice == 1:
        name, length = rng.choice(["views", "expressions"]), rng.choice([33, 102, 200_000])
        edit_meta(root, lambda meta: meta.update({name: [meta[name][-1]] * length}))
        return f"meta.json with {length} {name}"
    from tests.readers import edit_member
    payload = rng.choice([b"{not json", b"[" * 50_000, b"\xff\xfe", b"null", b'{"id": "id-0000000"}', b"1e999999"])
    edit_member(root, "meta.json", lambda _: payload)
    return f"meta.json = {payload[:20]!r}"


def bad_manifest(root: Path, rng: random.Random) -> str:
    manifest = json.loads((root / "manifest.json").read_text())
    choice = rng.randrange(3)
    if choice == 0:
        field = rng.choice(["bytes", "count", "first_index", "path", "sha256"])
        value = rng.choice(ODD_VALUES + [10**15, 2**63, "images/../../x.tar", "images/shard-000009.tar", "layers/shard-000000.tar"])
        record = manifest["shards"][0]
        (record["files"]["images"] if field in ("bytes", "path", "sha256") else record)[field] = value
        described = f"record {field} = {str(value)[:40]!r}"
    elif choice == 1:
        field = rng.choice(["shards", "identities", "seed", "config", "format", "log", "sets"])
        value = rng.choice(ODD_VALUES)
        manifest[field] = value
        described = f"manifest {field} = {str(value)[:40]!r}"
    else:
        text = json.dumps(manifest)
        (root / "manifest.json").write_text(text[: rng.randrange(len(text))])
        return "truncated manifest.json"
    (root / "manifest.json").write_text(json.dumps(manifest))
    return described


def symlinks(root: Path, rng: random.Random) -> str:
    outside = root.parent / f"{root.name}-outside"
    outside.mkdir()
    target = rng.choice([SHARD, "images", "manifest.json"])
    (root / target).rename(outside / "moved")
    (root / target).symlink_to(outside / "moved", target_is_directory=(outside / "moved").is_dir())
    return f"{target} is a symbolic link"


SHARD_DAMAGE = [flip_bytes, truncate, rename_member, huge_tar_size, huge_extended_header]
DAMAGE = SHARD_DAMAGE + [bad_meta, bad_manifest, symlinks]


# --------------------------------------------------------------------------------------------- the child


class Hang(Exception):
    pass


def on_alarm(signum, frame):
    raise Hang(f"no answer within {CASE_SECONDS} s")


def cap_memory() -> None:
    """Cap the address space 1 GiB above what this process maps now (its imports, torch's included)."""
    mapped = int(next(line for line in open("/proc/self/status") if line.startswith("VmSize")).split()[1]) << 10
    resource.setrlimit(resource.RLIMIT_AS, (mapped + HEADROOM, resource.RLIM_INFINITY))


def fuzz(work: Path, cases: int, seed: int) -> list[str]:
    """Run the cases; returns the defects found, one line each (the outcomes are tallied on stderr)."""
    import trainer.data  # noqa: F401  imported before the cap, like every reader
    from tests.trainer_shards import write_dataset

    pristine = work / "pristine"
    write_dataset(str(pristine), identities=3, image_size=16, pain_expressions=1, per_shard=2)
    cap_memory()
    signal.signal(signal.SIGALRM, on_alarm)
    rng, defects, tally = random.Random(seed), [], {"ok": 0, "refused": 0}
    for case in range(cases):
        root = work / f"case-{case:03d}"
        shutil.copytree(pristine, root)
        damage = rng.choice(DAMAGE)
        described = damage(root, rng)
        if damage in SHARD_DAMAGE and rng.random() < 0.5:
            relist(root)
            described += ", listed again"
        outcomes = {}
        for reader in READERS:
            signal.alarm(CASE_SECONDS)
            try:
                outcomes[reader] = run_reader(reader, str(root))
            except BaseException as error:  # anything but a FactoryError is a defect, MemoryError and Hang included
                outcomes[reader] = "defect"
                defects.append(f"case {case} ({described}): {reader} raised {type(error).__name__}: {str(error)[:200]}")
            finally:
                signal.alarm(0)
            tally["ok" if outcomes[reader] == "ok" else "refused"] += 1
        if outcomes["verify"] == "ok" and set(outcomes.values()) != {"ok"}:
            defects.append(f"case {case} ({described}): verify accepted what another reader refused: {outcomes}")
        shutil.rmtree(root)
    print(f"{cases} cases × {len(READERS)} readers: {tally}", file=sys.stderr)
    return defects


# --------------------------------------------------------------------------------------------- the tests


def test_every_reader_refuses_damage_cleanly_or_reads_it_correctly(tmp_path):
    """The fuzz loop runs in a child process with capped memory; it prints one line per defect."""
    started = time.monotonic()
    child = subprocess.run([sys.executable, __file__, str(tmp_path), str(CASES), str(SEED)], capture_output=True, text=True,
                           timeout=600, cwd=REPO)
    assert child.returncode == 0, f"exit {child.returncode}\n{child.stdout[-5000:]}\n{child.stderr[-5000:]}"
    assert "300 cases × 4 readers" in child.stderr and not child.stdout.strip(), child.stdout[-5000:]
    print(child.stderr.strip().splitlines()[-1], f"in {time.monotonic() - started:.0f} s")


def test_the_command_line_answers_the_worst_cases_in_one_line_within_a_memory_cap(tmp_path):
    """verify, inspect and preview as a user runs them, under `ulimit -v` (4 GiB: torch alone maps 3), on a huge declared member, a
    meta.json with 200,000 views, one nested past the parser's stack and a symlinked shard."""
    from tests.readers import edit_member
    from tests.trainer_shards import write_dataset

    cases = {
        "huge member": lambda root: huge_tar_size_fixed(root, 2**31),
        "200,000 views": lambda root: edit_meta(root, lambda meta: meta.update(views=[{"name": "v0"}] * 200_000)),
        "deep JSON": lambda root: edit_member(root, "meta.json", lambda _: b"[" * 100_000),
        "symlinked shard": lambda root: symlinks_fixed(root),
    }
    pristine = tmp_path / "pristine"
    write_dataset(str(pristine), identities=2, image_size=16, pain_expressions=1, per_shard=2)
    for name, damage in cases.items():
        root = tmp_path / name.replace(" ", "-").replace(",", "")
        shutil.copytree(pristine, root)
        damage(root)
        for command in (["verify", "--no-progress"], ["inspect"], ["preview", "--out", str(tmp_path / "sheet.png")]):
            run = subprocess.run(["bash", "-c", 'ulimit -v 4194304 && exec "$@"', "bash", sys.executable, "-m", "factory",
                                  command[0], str(root), *command[1:]], capture_output=True, text=True, timeout=120, cwd=REPO)
            errors = [line for line in run.stderr.splitlines() if line.startswith(("error: ", "FAILED: "))]
            assert run.returncode in (1, 2) and len(errors) == 1 and "Traceback" not in run.stderr, (name, command, run.stderr[-3000:])


def huge_tar_size_fixed(root: Path, size: int) -> None:
    """The first sample's meta.json header announces `size` bytes."""
    data = bytearray((root / SHARD).read_bytes())
    data[124:136] = f"{size:011o}\0".encode()
    data[148:156] = b" " * 8
    data[148:156] = f"{sum(data[:512]):06o}\0 ".encode()
    (root / SHARD).write_bytes(bytes(data))
    relist(root)


def symlinks_fixed(root: Path) -> None:
    outside = root.parent / "outside.tar"
    (root / SHARD).rename(outside)
    (root / SHARD).symlink_to(outside)


if __name__ == "__main__":
    found = fuzz(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
    print("\n".join(found))
