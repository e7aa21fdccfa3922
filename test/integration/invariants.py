"""Invariants that hold after every completed run of a sync (issue #6, docs/reliability.md):

1. Run counters equal the log rows: for each finished run of a sync that keeps logs, `subscribed`,
   `unsubscribed` and `failed` equal its sync_logs rows (succeeded subscribes, succeeded unsubscribes,
   failed), and each record key sent in a run has exactly one log row (a batch is recorded once).
2. The snapshot equals the list: the latest snapshot table's records are the members of the sync's
   Iterable list (compared on the identifiers the sync maps). Rows with row_hash 0 are records whose
   last request has no known outcome (a crash, an interrupt, a timeout): they may or may not be on the
   list, so the list must lie between the acknowledged rows and all rows; `settled=True` (the default,
   for a run that ended cleanly) requires there be none.
3. Nothing invalid was ever sent: the emulator's invalid_received counts of invalid emails, invalid
   userIds, subscribers without an identifier and malformed bodies did not grow since the test began
   (conftest.py records the baseline before each test, see `begin`). A data field whose type differs
   from the project's (`data_type_mismatch`) is not counted: only Iterable knows its field types, and
   reports such a record as `invalid_data`.

check_invariants(conn, emulator, sync_name) asserts all three; conn must be a superuser connection to
the sync's database.
"""

import collections

from harness import query, scalar

# Error codes of rows refused before sending (several rows may share a record key, e.g. duplicates).
REFUSED_CODES = ("invalid_email", "invalid_user_id", "missing_identifier", "duplicate_key")
IN_DOUBT_HASH = 0  # row_hash of a snapshot row whose last request has no known outcome

INVALID_KINDS = ("emails", "userIds", "missing_identifier", "bad_json_body")  # of invalid_received counts

_baseline = {"invalid": None}


def invalid_counts(emulator):
    counts = emulator.invalid_received()["counts"]
    return {kind: counts.get(kind, 0) for kind in INVALID_KINDS}


def begin(emulator):
    """Records the emulator's counts of invalid values received: the baseline of invariant 3."""
    _baseline["invalid"] = invalid_counts(emulator)


def _sync(conn, sync_name):
    rows = query(conn, "SELECT s.sync_id, s.list_id, s.email_column, s.user_id_column, s.retain_sync_logs, "
                       "s.sync_log_retention_days FROM iterable_audience.sync s WHERE s.sync_name = %s", (sync_name,))
    assert rows, "no sync named %r" % sync_name
    return rows[0]


def check_counters(conn, sync_name):
    """Invariant 1, for every finished run of the sync."""
    sync = _sync(conn, sync_name)
    if not sync["retain_sync_logs"]:
        return
    runs = query(conn, "SELECT run_id, status, subscribed, unsubscribed, failed FROM iterable_audience.sync_runs "
                       "WHERE sync_id = %s AND status <> 'running' ORDER BY run_id", (sync["sync_id"],))
    if sync["sync_log_retention_days"] == 0:
        runs = runs[-1:]  # the logs of earlier runs are deleted by retention
    for run in runs:
        counts = query(conn, "SELECT count(*) FILTER (WHERE action = 'subscribe' AND status = 'succeeded') AS subscribed, "
                             "count(*) FILTER (WHERE action = 'unsubscribe' AND status = 'succeeded') AS unsubscribed, "
                             "count(*) FILTER (WHERE status = 'failed') AS failed "
                             "FROM iterable_audience.sync_logs WHERE run_id = %s", (run["run_id"],))[0]
        assert (run["subscribed"], run["unsubscribed"], run["failed"]) == (
            counts["subscribed"], counts["unsubscribed"], counts["failed"]), (
            "run %d (%s): counters (subscribed, unsubscribed, failed) = %s but its logs say %s" % (
                run["run_id"], run["status"], (run["subscribed"], run["unsubscribed"], run["failed"]),
                (counts["subscribed"], counts["unsubscribed"], counts["failed"])))
        twice = query(conn, "SELECT record_key, count(*) AS n FROM iterable_audience.sync_logs WHERE run_id = %s "
                            "AND record_key IS NOT NULL AND (error_code IS NULL OR error_code <> ALL(%s)) "
                            "GROUP BY record_key HAVING count(*) > 1 LIMIT 5", (run["run_id"], list(REFUSED_CODES)))
        assert twice == [], "run %d logged records more than once: %s" % (run["run_id"], twice)


def _project(sync, email, user_id):
    """The identifiers the sync maps, as a comparable pair."""
    return (email if sync["email_column"] else None, user_id if sync["user_id_column"] else None)


def effective_snapshot(conn, sync_id):
    """({record_key: (email, user_id)} acknowledged, {...} in doubt): the sync's latest snapshot table,
    with the batches of runs that ended before recording their snapshot (a crash) applied the way the
    next run will settle them (docs/reliability.md). An independent model of that rule: a record of an
    answered batch that succeeded takes the batch's values (subscribe) or leaves (unsubscribe); one
    that failed keeps what it had; one of an unanswered batch, or failed with an unknown outcome, is
    in doubt."""
    table = scalar(conn, "SELECT table_name FROM iterable_audience.snapshot WHERE sync_id = %s AND filled "
                         "ORDER BY run_id DESC LIMIT 1", (sync_id,))
    acknowledged, in_doubt = {}, {}
    if table is not None:
        for r in query(conn, 'SELECT record_key, email, user_id, row_hash FROM iterable_audience_snapshots."%s"'
                       % table):
            (in_doubt if r["row_hash"] == IN_DOUBT_HASH else acknowledged)[r["record_key"]] = (r["email"], r["user_id"])
    batches = query(conn, "SELECT b.action, b.answered_at IS NOT NULL AS answered, b.outcome_unknown, b.record_keys, "
                          "b.emails, b.user_ids, b.error_codes FROM iterable_audience.sync_batch b "
                          "JOIN iterable_audience.sync_runs r USING (run_id) WHERE r.sync_id = %s AND NOT r.settled "
                          "AND b.kind = 'sent' ORDER BY b.run_id, b.batch_no", (sync_id,))
    for b in batches:
        for i, key in enumerate(b["record_keys"]):
            code = b["error_codes"][i] if b["error_codes"] else None
            ident = (b["emails"][i], b["user_ids"][i])
            if not b["answered"] or (code is not None and b["outcome_unknown"]):
                acknowledged.pop(key, None)
                in_doubt[key] = ident
            elif code is None:
                in_doubt.pop(key, None)
                acknowledged.pop(key, None)
                if b["action"] == "subscribe":
                    acknowledged[key] = ident
    return acknowledged, in_doubt


def snapshot_and_list(conn, emulator, sync_name):
    """({acknowledged (email, userId)}, {in-doubt (email, userId)}, {list members (email, userId)})."""
    sync = _sync(conn, sync_name)
    ack, doubt = effective_snapshot(conn, sync["sync_id"])
    acknowledged = {_project(sync, e, u) for e, u in ack.values()}
    in_doubt = {_project(sync, e, u) for e, u in doubt.values()}
    on_list = [_project(sync, m["email"], m["userId"]) for m in emulator.members(sync["list_id"])]
    dups = [k for k, n in collections.Counter(on_list).items() if n > 1]
    assert not dups, "the list holds the same identifiers twice: %s" % dups[:5]
    return acknowledged, in_doubt, set(on_list)


def _key(pair):
    """The record key of (email, userId) projected on the sync's identifiers: the userId, else the email."""
    return pair[1] if pair[1] is not None else pair[0]


def check_snapshot(conn, emulator, sync_name, settled=True):
    """Invariant 2. A record in doubt may be on the list with the identifiers the snapshot knew or with
    those of the request in doubt (an email that changed): it is compared by its record key."""
    acknowledged, in_doubt, on_list = snapshot_and_list(conn, emulator, sync_name)
    if settled:
        assert not in_doubt, "%d snapshot rows are still in doubt after a settled run: %s" % (
            len(in_doubt), sorted(in_doubt, key=repr)[:5])
    missing = acknowledged - on_list
    doubtful_keys = {_key(p) for p in in_doubt}
    extra = {p for p in on_list - acknowledged if _key(p) not in doubtful_keys}
    assert not missing and not extra, (
        "snapshot != list of sync %s: %d acknowledged but not on the list %s; %d on the list but not in the "
        "snapshot %s" % (sync_name, len(missing), sorted(missing, key=repr)[:5], len(extra), sorted(extra, key=repr)[:5]))


def check_nothing_invalid_sent(emulator, since=None):
    """Invariant 3."""
    since = _baseline["invalid"] if since is None else since
    assert since is not None, "no baseline: call invariants.begin(emulator) when the test starts"
    now = invalid_counts(emulator)
    assert now == since, "the emulator received invalid values: %s -> %s; latest samples %s" % (
        since, now, emulator.invalid_received()["samples"][-5:])


def check_invariants(conn, emulator, sync_name, settled=True, invalid_since=None):
    check_counters(conn, sync_name)
    check_snapshot(conn, emulator, sync_name, settled=settled)
    check_nothing_invalid_sent(emulator, invalid_since)

