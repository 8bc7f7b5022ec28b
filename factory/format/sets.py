"""Shard sets: a shard's samples split by use into one tar per set, written side by side, and read back together.

    record = write_shard_sets(storage, task, ("images", "layers", "assets"), samples)   # → ShardRecord (all files)
    split_members("id-0000003", members, sets)   # {set name: {member: bytes}}, each member in its set

Which member goes in which set is factory/format/members.py's `member_set`. Members of sets that are not written
are left out (a dataset made with `--sets images` has no depth). The files of a shard are committed together: if
any of them fails, none is listed (a file without a record is written again by the next run).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import ExitStack

from factory.format.manifest import SetFile, ShardRecord
from factory.format.members import member_set
from factory.format.shards import ShardError, ShardTask, check_member_name, tar_writer, write_sample
from factory.format.storage import Storage


def split_members(key: str, members: Mapping[str, bytes], sets: tuple[str, ...]) -> dict[str, dict[str, bytes]]:
    """The sample's members grouped by set, for the sets in `sets`; each set must get at least one member (a reader
    joins the sets by key, so no set may skip a sample)."""
    parts: dict[str, dict[str, bytes]] = {name: {} for name in sets}
    for member, payload in members.items():
        check_member_name(key, member)
        try:
            name = member_set(member)
        except ValueError as error:
            raise ShardError(f"{key}: {error}") from None
        if name in parts:
            parts[name][member] = payload
    empty = [name for name, part in parts.items() if not part]
    if empty:
        raise ShardError(f"{key}: no members for the {', '.join(empty)} set(s)")
    return parts


def write_shard_sets(storage: Storage, task: ShardTask, sets: tuple[str, ...],
                     samples: Iterable[tuple[str, Mapping[str, bytes]]]) -> ShardRecord:
    """Write the shard's samples into one tar per set (`task.path(set)`), streaming; returns its record."""
    with ExitStack() as stack:
        sinks = {name: stack.enter_context(storage.committing(task.path(name))) for name in sets}
        tars = {name: stack.enter_context(tar_writer(sink)) for name, sink in sinks.items()}
        for key, members in samples:
            for name, part in split_members(key, members, sets).items():
                write_sample(tars[name], key, part)
    files = {name: SetFile(path=task.path(name), bytes=sink.size, sha256=sink.sha256) for name, sink in sinks.items()}
    return ShardRecord(first_index=task.first_index, count=task.count, files=files)
