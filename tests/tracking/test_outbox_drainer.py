"""The outbox and its drainers against real Redis and PostgreSQL: events land
exactly once through concurrent drainers, a dead drainer's events are taken
over, PostgreSQL can go away and come back, bad entries are dead-lettered, and
events spool to disk while Redis is unreachable."""

from __future__ import annotations

import json
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest

from orchestrator.keys import task_live as task_key
from orchestrator.storage.db.engine import engine_for
from orchestrator.tracking.recording import events
from orchestrator.tracking.recording.drainer import Drainer
from orchestrator.tracking.recording.drainer_thread import DrainerThread
from orchestrator.tracking.recording.outbox import Outbox
from orchestrator.tracking.recording.spool import Spool
from orchestrator.tracking.recording.tracker import Tracker
from orchestrator.tracking.states import FAILURE, PENDING, STARTED, SUCCESS
from tests.tracking.proxy import TcpProxy
from tests.tracking.rows import rows_of, wait_for


def task_lifecycle(tracker: Tracker, name: str = "tasks.test") -> str:
    """PENDING → STARTED → SUCCESS of one task, as three outbox entries."""
    task_id = str(uuid.uuid4())
    tracker.emit([events.task_record(task_id, name, PENDING, 0, queue="cpu_queue", args=[1])])
    tracker.emit([events.task_record(task_id, name, STARTED, 0, worker="w@test")])
    tracker.emit([events.task_record(task_id, name, SUCCESS, 0, worker="w@test", result={"ok": 1}, runtime=0.01)])
    return task_id


def drainer(settings, engine=None, **kwargs) -> Drainer:
    made = Drainer.from_settings(settings, **kwargs)
    if engine is not None:
        made.engine = engine
    made.ensure_group()
    return made


def assert_all_succeeded(database_url: str, ids: list[str]) -> None:
    rows = rows_of(database_url, ids)
    assert [r["task_id"] for r in rows] == ids
    assert {r["status"] for r in rows} == {SUCCESS}
    assert all(r["worker"] == "w@test" and r["args"] == [1] and r["result"] == {"ok": 1} for r in rows)


def outbox_empty(rclient, settings) -> bool:
    pending = rclient.xpending(settings.tracking_outbox, settings.tracking_group)["pending"]
    return rclient.xlen(settings.tracking_outbox) == 0 and pending == 0


def test_events_land_once_and_leave_the_outbox(tracking_settings, rclient):
    tracker = Tracker(tracking_settings)
    ids = [task_lifecycle(tracker) for _ in range(30)]
    assert rclient.xlen(tracking_settings.tracking_outbox) == 90
    one = drainer(tracking_settings)
    assert one.drain_all() == 90
    assert_all_succeeded(tracking_settings.tracking_database_url, ids)
    assert outbox_empty(rclient, tracking_settings)
    live = rclient.hgetall(task_key(ids[0]))
    assert live[b"status"] == b"SUCCESS" and live[b"worker"] == b"w@test"
    assert 0 < rclient.ttl(task_key(ids[0])) <= tracking_settings.tracking_live_ttl


def test_live_hash_keeps_the_highest_ranked_state(tracking_settings, rclient):
    tracker = Tracker(tracking_settings)
    task_id = str(uuid.uuid4())
    tracker.emit([events.task_record(task_id, "tasks.test", SUCCESS, 0, worker="w")])
    tracker.emit([events.task_record(task_id, "tasks.test", STARTED, 0, worker="late")])  # arrives late
    assert rclient.hget(task_key(task_id), "status") == b"SUCCESS"
    tracker.emit([events.task_record(task_id, "tasks.test", FAILURE, None, worker="parent")])
    assert rclient.hget(task_key(task_id), "status") == b"FAILURE"


def test_concurrent_drainers_while_producing(tracking_settings, rclient):
    tracker = Tracker(tracking_settings)
    threads = [DrainerThread(drainer(tracking_settings)).start() for _ in range(3)]
    try:
        ids = [task_lifecycle(tracker) for _ in range(400)]
        wait_for(
            lambda: (
                len([r for r in rows_of(tracking_settings.tracking_database_url, ids) if r["status"] == SUCCESS])
                == len(ids)
            ),
            60,
            "all rows SUCCESS",
        )
        wait_for(lambda: outbox_empty(rclient, tracking_settings), 10, "outbox empty")
    finally:
        for thread in threads:
            thread.stop()
    assert_all_succeeded(tracking_settings.tracking_database_url, ids)
    assert sum(t.drainer.written for t in threads) == 3 * len(ids)
    assert sum(1 for t in threads if t.drainer.written) >= 2  # the work was actually shared


def test_a_dead_drainers_entries_are_taken_over(tracking_settings, rclient):
    tracker = Tracker(tracking_settings)
    ids = [task_lifecycle(tracker) for _ in range(5)]
    dead = drainer(tracking_settings)
    assert len(dead._read(0)) == 15  # read (now pending for it), then it "dies" before committing
    survivor = drainer(tracking_settings)
    assert survivor.drain_all() == 0  # not idle long enough yet: still the dead one's
    assert rows_of(tracking_settings.tracking_database_url, ids) == []
    time.sleep(tracking_settings.tracking_claim_idle_seconds + 0.2)
    survivor._next_claim = 0
    assert survivor.drain_all() == 15
    assert_all_succeeded(tracking_settings.tracking_database_url, ids)
    assert outbox_empty(rclient, tracking_settings)


def test_postgres_away_then_back(tracking_settings, rclient):
    url = urlsplit(tracking_settings.tracking_database_url)
    if not url.port:
        pytest.skip("PostgreSQL on a Unix socket: no TCP to cut")
    proxy = TcpProxy(url.hostname, url.port).open()
    proxied = tracking_settings.tracking_database_url.replace(f":{url.port}/", f":{proxy.port}/")
    tracker = Tracker(tracking_settings)
    thread = DrainerThread(drainer(tracking_settings, engine=engine_for(proxied))).start()
    try:
        first = [task_lifecycle(tracker) for _ in range(10)]
        wait_for(lambda: len(rows_of(tracking_settings.tracking_database_url, first)) == 10, 20, "first rows")
        proxy.close()  # PostgreSQL "goes away" (and the drainer's open connection with it)
        during = [task_lifecycle(tracker) for _ in range(50)]
        time.sleep(2)
        assert rows_of(tracking_settings.tracking_database_url, during) == []
        assert rclient.xlen(tracking_settings.tracking_outbox) == 150  # kept in Redis meanwhile
        proxy.open()
        wait_for(lambda: len(rows_of(tracking_settings.tracking_database_url, during)) == 50, 30, "replayed rows")
        wait_for(lambda: outbox_empty(rclient, tracking_settings), 10, "outbox empty")
    finally:
        thread.stop()
        proxy.close()
    assert_all_succeeded(tracking_settings.tracking_database_url, first + during)


def test_bad_entries_are_dead_lettered_and_the_rest_written(tracking_settings, rclient):
    tracker = Tracker(tracking_settings)
    good = task_lifecycle(tracker)
    rclient.xadd(tracking_settings.tracking_outbox, {"e": "{not json"})
    too_long = str(uuid.uuid4())
    tracker.emit([events.task_record(too_long, "x" * 300, PENDING, 0)])  # task_name is VARCHAR(255)
    also_good = task_lifecycle(tracker)
    assert drainer(tracking_settings).drain_all() == 8
    assert_all_succeeded(tracking_settings.tracking_database_url, [good, also_good])
    dead = rclient.xrange(f"{tracking_settings.tracking_outbox}:dead")
    reasons = sorted(fields[b"reason"].decode()[:12] for _, fields in dead)
    assert len(dead) == 2 and reasons[0].startswith("(psycopg") and reasons[1].startswith("undecodable")
    assert outbox_empty(rclient, tracking_settings)


def test_events_spool_to_disk_while_redis_is_unreachable(tracking_settings, rclient, tmp_path):
    spool = Spool(tracking_settings.tracking_spool_dir)
    down = Outbox("redis://127.0.0.1:1/0", tracking_settings.tracking_outbox, 60, spool)
    task_id = str(uuid.uuid4())
    started = time.monotonic()
    for status in (PENDING, STARTED):
        down.emit([events.task_record(task_id, "tasks.test", status, 0, worker="w@test", args=[1])])
    down.emit([events.task_record(task_id, "tasks.test", SUCCESS, 0, worker="w@test", result={"ok": 1})])
    assert time.monotonic() - started < 3  # a task is not held up by a Redis that is away
    assert len(spool.pending_files()) == 1 and rclient.xlen(tracking_settings.tracking_outbox) == 0
    assert drainer(tracking_settings).drain_all() == 3  # the drainer requeues the spool, then writes it
    assert spool.pending_files() == []
    assert_all_succeeded(tracking_settings.tracking_database_url, [task_id])


def test_spool_appends_are_not_lost_while_a_drainer_takes_the_file(tmp_path):
    spool = Spool(tmp_path)
    taken: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        for i in range(1000):
            spool.append(f'[{{"n": {i}}}]')
        stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    while not stop.is_set():
        spool.drain(taken.extend)
    thread.join()
    spool.drain(taken.extend)
    assert sorted(int(line.split(":")[1].strip(" }]")) for line in taken) == list(range(1000))


def test_started_is_sent_with_the_outcome_or_after_a_short_hold(tracking_settings, rclient):
    from orchestrator.tracking.recording.tracker import HOLD_STARTED_SECONDS

    tracker = Tracker(tracking_settings)
    stream = tracking_settings.tracking_outbox
    quick, slow = str(uuid.uuid4()), str(uuid.uuid4())
    tracker.hold_started(quick, events.task_record(quick, "tasks.test", STARTED, 0, worker="w@test"))
    tracker.finish(quick, [events.task_record(quick, "tasks.test", SUCCESS, 0, worker="w@test")])
    [(_, fields)] = rclient.xrange(stream)
    assert [r["status"] for r in json.loads(fields[b"e"])] == [STARTED, SUCCESS]  # one round trip
    tracker.hold_started(slow, events.task_record(slow, "tasks.test", STARTED, 0, worker="w@test"))
    assert rclient.xlen(stream) == 1
    wait_for(lambda: rclient.xlen(stream) == 2, 5, "held STARTED sent", interval=0.01)
    assert rclient.hget(task_key(slow), "status") == b"STARTED"
    assert tracker.runtime(slow) >= HOLD_STARTED_SECONDS
    tracker.finish(slow, [events.task_record(slow, "tasks.test", SUCCESS, 0, worker="w@test")])
    entries = [[r["status"] for r in json.loads(f[b"e"])] for _, f in rclient.xrange(stream)]
    assert entries == [[STARTED, SUCCESS], [STARTED], [SUCCESS]]


def test_drain_command_empties_the_outbox(tracking_settings, rclient, monkeypatch, capsys):
    from orchestrator.tracking.__main__ import main

    tracker = Tracker(tracking_settings)
    ids = [task_lifecycle(tracker) for _ in range(5)]
    for key, value in {
        "BROKER_URL": tracking_settings.broker_url,
        "DATABASE_URL": tracking_settings.database_url,
        "TRACKING_OUTBOX": tracking_settings.tracking_outbox,
        "LOG_FORMAT": "json",
        "TRACKING_SPOOL_DIR": str(tracking_settings.tracking_spool_dir),
    }.items():
        monkeypatch.setenv(f"AIWORKER_{key}", value)
    main(["outbox"])
    assert json.loads(capsys.readouterr().out)["entries"] == 15
    main(["drain", "--once"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"written": 15}
    assert_all_succeeded(tracking_settings.tracking_database_url, ids)
    assert outbox_empty(rclient, tracking_settings)


def test_replay_dead_puts_dead_letters_back_and_they_land(tracking_settings, rclient, monkeypatch, capsys):
    """After the cause is fixed (e.g. an older version dead-lettered NUL characters),
    `python -m orchestrator.tracking replay-dead` sends the entries through again."""
    from orchestrator.tracking.__main__ import main

    outbox = tracking_settings.tracking_outbox
    task_id = str(uuid.uuid4())
    records = [
        events.task_record(task_id, "tasks.test", status, 0, worker="w@test", args=["a\x00b"])
        for status in (PENDING, STARTED)
    ]
    records.append(events.task_record(task_id, "tasks.test", SUCCESS, 0, worker="w@test", result={"ok": 1}))
    rclient.xadd(f"{outbox}:dead", {"e": json.dumps(records), "reason": "unsupported Unicode escape", "id": "1-0"})
    rclient.xadd(f"{outbox}:dead", {"reason": "undecodable: no records", "id": "2-0"})
    for key, value in {
        "BROKER_URL": tracking_settings.broker_url,
        "DATABASE_URL": tracking_settings.database_url,
        "TRACKING_OUTBOX": outbox,
        "LOG_FORMAT": "json",
        "TRACKING_SPOOL_DIR": str(tracking_settings.tracking_spool_dir),
    }.items():
        monkeypatch.setenv(f"AIWORKER_{key}", value)
    main(["replay-dead"])
    assert json.loads(capsys.readouterr().out) == {"replayed": 1, "kept": 1}
    assert drainer(tracking_settings).drain_all() == 1
    row = rows_of(tracking_settings.tracking_database_url, [task_id])[0]
    assert (row["status"], row["args"], row["result"]) == (SUCCESS, ["a\ufffdb"], {"ok": 1})
    assert rclient.xlen(f"{outbox}:dead") == 1


def test_a_process_without_a_drainer_requeues_its_own_spool_when_redis_is_back(tracking_settings, rclient):
    """The gateway and beat have no drainer beside them (a pod's own spool in Kubernetes):
    their first event once Redis answers again takes what they spooled along."""
    spool = Spool(tracking_settings.tracking_spool_dir)
    outbox = Outbox("redis://127.0.0.1:1/0", tracking_settings.tracking_outbox, 60, spool)
    task_id = str(uuid.uuid4())
    outbox.emit([events.task_record(task_id, "tasks.test", PENDING, 0, worker="w@test", args=[1])])
    assert len(spool.pending_files()) == 1
    outbox.redis_url, outbox._client, outbox._broken_until = tracking_settings.redis_url, None, 0.0  # Redis is back
    outbox.emit([events.task_record(task_id, "tasks.test", SUCCESS, 0, worker="w@test", result={"ok": 1})])
    assert spool.pending_files() == [] and rclient.xlen(tracking_settings.tracking_outbox) == 2
    assert drainer(tracking_settings).drain_all() == 2
    assert_all_succeeded(tracking_settings.tracking_database_url, [task_id])
