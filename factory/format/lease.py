"""One writer per dataset: a lease with an owner, a heartbeat and an expiry.

    lease = DatasetLease.acquire(storage, owner="generate-1a2b3c4d")   # LeaseHeld, naming the holder, if taken
    with lease:                      # renews itself every TTL/4 in a background thread, released at the end
        ...
        lease.check()                # before each commit: LeaseLost once the lease lapsed or was taken over

The lease lives in the dataset as `lease/<generation>.json` (8 digits). The highest generation holds the dataset
while it is live: not released, its `expires` (on its holder's clock) still ahead and, where the holder ran on
this very host, its process still alive (so a killed driver's lease is broken at once by the next driver on the
same machine; from elsewhere it lapses after TTL_S). Taking the lease means creating the next generation with an
exclusive create (a hard link on a local folder, a PUT with If-None-Match: * on S3): of two drivers that start
together exactly one succeeds, and the other reads the winner and is refused in one line (or waits). A released
generation is marked, never deleted, so generations only grow and a stalled holder that wakes up sees that it
was overtaken; older generations are removed by the next holder. Clocks of machines sharing a dataset must agree
to well within TTL_S.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from factory.errors import FactoryError
from factory.format.storage import Storage, StorageError

LEASE_DIR = "lease"
GENERATION_PATTERN = re.compile(r"^(\d{8})\.json$")
TTL_S = 60.0  # a holder that has not renewed for this long has lost the lease
POLL_S = 5.0  # how often a waiting driver looks again
HELD_HERE: set[str] = set()  # owners of the leases this process holds now (a lease it could not mark released is not)


class LeaseHeld(FactoryError):
    """Another driver holds the dataset's lease."""


class LeaseLost(FactoryError):
    """This driver's lease lapsed or was taken over: it must stop writing."""


@dataclass(frozen=True)
class LeaseRecord:
    """What a lease generation holds: who, where, and until when."""

    owner: str  # the run, e.g. "generate-1a2b3c4d"
    host: str
    boot_id: str  # with `host`, tells whether `pid` can be looked up here
    pid: int
    process_started: float  # the holder's process start time, so a reused pid is not mistaken for it
    acquired: float
    heartbeat: float
    expires: float
    released: bool = False

    @classmethod
    def mine(cls, owner: str, ttl_s: float) -> "LeaseRecord":
        now = time.time()
        return cls(owner=owner, host=socket.gethostname(), boot_id=boot_id(), pid=os.getpid(),
                   process_started=process_start_time(os.getpid()) or 0.0, acquired=now, heartbeat=now, expires=now + ttl_s)

    @classmethod
    def from_json(cls, data: bytes, where: str) -> "LeaseRecord":
        try:
            return cls(**json.loads(data))
        except (ValueError, TypeError) as error:
            raise StorageError(f"{where} is not a lease record ({error}); remove it if no driver is writing") from None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    def live(self, now: float) -> bool:
        if self.released or self.expires <= now:
            return False
        if self.host != socket.gethostname() or self.boot_id != boot_id():
            return True  # a process elsewhere cannot be looked up: its lease lapses by itself
        if self.pid == os.getpid():  # this very process: it knows which of its runs still hold a lease
            return self.owner in HELD_HERE
        started = process_start_time(self.pid)
        return started is not None and abs(started - self.process_started) < 0.05

    def describe(self, now: float) -> str:
        return (f"{self.owner} (pid {self.pid} on {self.host}, heartbeat {now - self.heartbeat:.0f} s ago, "
                f"lease expires in {self.expires - now:.0f} s)")


def boot_id() -> str:
    """This machine's boot id (Linux), "" elsewhere: a pid means the same process only within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start_time(pid: int) -> float | None:
    """When process `pid` started (rounded to 10 ms), or None if there is no such process here."""
    import psutil

    try:
        return round(psutil.Process(pid).create_time(), 2)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def generation_path(generation: int) -> str:
    return f"{LEASE_DIR}/{generation:08d}.json"


def generations(storage: Storage) -> list[int]:
    return sorted(int(match.group(1)) for name in storage.list(LEASE_DIR) if (match := GENERATION_PATTERN.match(name)))


def current_holder(storage: Storage) -> tuple[int | None, LeaseRecord | None]:
    """The highest generation and its record, (None, None) if the dataset never had a lease."""
    while True:
        found = generations(storage)
        if not found:
            return None, None
        try:
            data = storage.read_bytes(generation_path(found[-1]))
        except FileNotFoundError:  # removed by a new holder between listing and reading: look again
            continue
        return found[-1], LeaseRecord.from_json(data, storage.describe(generation_path(found[-1])))


class DatasetLease:
    def __init__(self, storage: Storage, generation: int, record: LeaseRecord, ttl_s: float) -> None:
        self.storage = storage
        self.generation = generation
        self.record = record
        self.ttl_s = ttl_s
        self.lost: str | None = None  # why the lease was lost, once it was
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @classmethod
    def acquire(cls, storage: Storage, owner: str, wait: bool = False, ttl_s: float = TTL_S, poll_s: float = POLL_S,
                on_wait=None) -> "DatasetLease":
        """Take the dataset's lease. If a live holder has it: LeaseHeld naming it, or with `wait`, call
        `on_wait(holder description)` once and look again every `poll_s` until it is free."""
        waited = False
        while True:
            top, holder = current_holder(storage)
            now = time.time()
            if holder is not None and holder.live(now):
                if not wait:
                    raise LeaseHeld(f"{storage.url} is being written by {holder.describe(now)}; one driver writes a dataset "
                                    "at a time: wait for it with --wait, or choose another --out")
                if on_wait and not waited:
                    on_wait(holder.describe(now))
                waited = True
                time.sleep(poll_s)
                continue
            generation = 0 if top is None else top + 1
            record = LeaseRecord.mine(owner, ttl_s)
            if storage.create_exclusive(generation_path(generation), record.to_json()):
                HELD_HERE.add(owner)
                lease = cls(storage, generation, record, ttl_s)
                lease.remove_older()
                return lease
            # another driver created this generation first: the next look reads it

    def __enter__(self) -> "DatasetLease":
        self._heartbeat = threading.Thread(target=self._beat, name="dataset-lease-heartbeat", daemon=True)
        self._heartbeat.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            self.renew()

    def renew(self) -> None:
        """Push the expiry TTL ahead, then make sure nobody took a later generation meanwhile."""
        if self.lost:
            return
        now = time.time()
        renewed = replace(self.record, heartbeat=now, expires=now + self.ttl_s)
        try:
            self.storage.write_bytes(generation_path(self.generation), renewed.to_json())
            self.record = renewed
            top, holder = current_holder(self.storage)
        except StorageError as error:
            if time.time() >= self.record.expires:
                self.lost = f"could not renew the lease on {self.storage.url} before it expired: {error}"
            return
        if top is not None and top > self.generation:
            self.lost = f"the lease on {self.storage.url} was taken over by {holder.describe(time.time())}"

    def check(self) -> None:
        """LeaseLost if this driver may no longer write: overtaken, or past its expiry without a renewal."""
        if self.lost is None and time.time() >= self.record.expires:
            self.lost = f"the lease on {self.storage.url} expired (no renewal for {self.ttl_s:g} s)"
        if self.lost:
            raise LeaseLost(f"{self.lost}; stopped writing (run the same command again to resume)")

    def release(self) -> None:
        """Stop renewing and mark the generation released (best effort: an unreachable store lets it lapse)."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        HELD_HERE.discard(self.record.owner)
        if self.lost:
            return
        now = time.time()
        try:
            self.storage.write_bytes(generation_path(self.generation), replace(self.record, expires=now, released=True).to_json())
        except StorageError:
            pass

    def remove_older(self) -> None:
        for generation in generations(self.storage):
            if generation < self.generation:
                try:
                    self.storage.remove(generation_path(generation))
                except (FileNotFoundError, StorageError):  # tidying only; another holder may have removed it
                    pass
