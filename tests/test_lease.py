"""The dataset lease (one driver per dataset) on a local folder and on S3 (moto's server, conditional PUTs): refusal
naming the holder, exactly one winner among drivers starting together, takeover after expiry or a dead holder on
this host, waiting, heartbeat, and a holder that learns it was overtaken."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from factory.format.lease import DatasetLease, LeaseHeld, LeaseLost, LeaseRecord, generation_path, generations
from factory.format.storage import Storage


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path) -> Storage:
    if request.param == "local":
        return Storage(str(tmp_path / "ds"))
    s3 = request.getfixturevalue("s3")
    return Storage(f"s3://{s3.bucket}/ds", {"client_kwargs": {"endpoint_url": s3.url}})


def foreign_record(owner: str, ttl_s: float) -> bytes:
    """A lease written by a driver on another machine (its process cannot be looked up from here)."""
    now = time.time()
    return LeaseRecord(owner=owner, host="elsewhere", boot_id="x", pid=1, process_started=0.0, acquired=now,
                       heartbeat=now, expires=now + ttl_s).to_json()


def test_exclusive_create_refuses_an_existing_file(storage):
    assert storage.create_exclusive("lease/x.json", b"first")
    assert not storage.create_exclusive("lease/x.json", b"second")
    assert storage.read_bytes("lease/x.json") == b"first"


def test_a_second_driver_is_refused_naming_the_holder_then_gets_it_after_release(storage):
    first = DatasetLease.acquire(storage, owner="generate-first")
    with pytest.raises(LeaseHeld, match=r"is being written by generate-first \(pid \d+ on .*heartbeat .* expires in"):
        DatasetLease.acquire(Storage(storage.url, storage.options), owner="generate-second")
    first.release()
    second = DatasetLease.acquire(storage, owner="generate-second")
    assert (first.generation, second.generation) == (0, 1)
    assert generations(storage) == [1]  # the older generation is tidied away; the released one stays until then
    second.release()
    assert json.loads(storage.read_bytes(generation_path(1)))["released"] is True


def test_of_drivers_starting_together_exactly_one_wins(storage):
    results: list = []
    start = threading.Barrier(6)

    def race(number: int) -> None:
        start.wait()
        try:
            results.append(DatasetLease.acquire(Storage(storage.url, storage.options), owner=f"generate-{number}"))
        except LeaseHeld as error:
            results.append(error)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [r for r in results if isinstance(r, DatasetLease)]
    assert len(winners) == 1 and len(results) == 6
    assert all(winners[0].record.owner in str(r) for r in results if isinstance(r, LeaseHeld))  # refusals name the winner
    winners[0].release()


def test_a_lease_from_elsewhere_lapses_after_its_ttl(storage):
    assert storage.create_exclusive(generation_path(0), foreign_record("generate-gone", ttl_s=3.0))
    with pytest.raises(LeaseHeld, match="generate-gone"):
        DatasetLease.acquire(storage, owner="generate-new")
    time.sleep(3.1)
    lease = DatasetLease.acquire(storage, owner="generate-new")
    assert lease.generation == 1
    lease.release()


def test_a_dead_driver_on_this_host_loses_its_lease_at_once(tmp_path):
    """A driver killed with SIGKILL cannot release its lease; on its own host the next driver sees that its
    process is gone and takes over without waiting for the expiry."""
    storage = Storage(str(tmp_path / "ds"))
    script = ("import sys; from factory.format.lease import DatasetLease; from factory.format.storage import Storage; "
              "DatasetLease.acquire(Storage(sys.argv[1]), owner='generate-killed'); import os; os._exit(0)")
    subprocess.run([sys.executable, "-c", script, storage.url], check=True, timeout=60)
    record = json.loads(storage.read_bytes(generation_path(0)))
    assert record["owner"] == "generate-killed" and not record["released"] and record["expires"] > time.time() + 30
    lease = DatasetLease.acquire(storage, owner="generate-next")
    assert lease.generation == 1
    lease.release()


def test_wait_takes_the_lease_once_the_holder_releases_it(storage):
    holder = DatasetLease.acquire(storage, owner="generate-holder")
    announced = []
    threading.Timer(0.5, holder.release).start()
    started = time.monotonic()
    waiter = DatasetLease.acquire(Storage(storage.url, storage.options), owner="generate-waiter", wait=True, poll_s=0.1,
                                  on_wait=announced.append)
    assert 0.4 < time.monotonic() - started < 10
    assert len(announced) == 1 and "generate-holder" in announced[0]
    waiter.release()


def test_the_heartbeat_keeps_a_short_lease_alive_and_an_overtaken_holder_stops(storage):
    with DatasetLease.acquire(storage, owner="generate-alive", ttl_s=1.5) as lease:
        time.sleep(3.2)  # two TTLs: only the heartbeat (every TTL/4) keeps it
        lease.check()
        with pytest.raises(LeaseHeld):
            DatasetLease.acquire(Storage(storage.url, storage.options), owner="generate-other")

    stalled = DatasetLease.acquire(storage, owner="generate-stalled", ttl_s=0.5)  # no heartbeat: a paused driver
    time.sleep(0.6)
    with pytest.raises(LeaseLost, match="expired"):
        stalled.check()  # past its own expiry it stops by itself, before anyone takes over
    taker = DatasetLease.acquire(Storage(storage.url, storage.options), owner="generate-taker")
    stalled.lost = None
    stalled.renew()  # the stalled driver wakes up and renews: it sees the later generation
    with pytest.raises(LeaseLost, match="taken over by generate-taker"):
        stalled.check()
    taker.release()
