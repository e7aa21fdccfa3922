"""Issue 16: the upgrade from 0.1.0 to 0.2.0 scrubs the API keys that 0.1.0 left in the logs.

Version 0.1.0 redacted a key only after a header name, so a run whose Iterable answer quoted the key
bare stored it in sync_batch.error_messages (sync_logs) and sync_runs.error. The installed library
is the new one, so a run cannot write such rows any more: the test writes them directly, as
superuser, the way 0.1.0 did, then runs ALTER EXTENSION ... UPDATE and checks that every form of
every account's key is gone and that everything else is kept."""

import pytest

from harness import query, scalar
from test_secret_redaction import leaks

# Characters that mean something in a regular expression, a slash, both letter cases.
KEYS = {"first": "ak.Sekr3t/(x)+Re$d^act[9]|*?{2}", "second": "second-Key_42"}


def _percent(text, upper=True, every=1):
    fmt = "%%%02X" if upper else "%%%02x"
    return "".join(fmt % ord(c) if i % every == 0 else c for i, c in enumerate(text))


def forms(key):
    """How 0.1.0 may have stored a key quoted by Iterable."""
    return {
        "bare": key,
        "lower": key.lower(),
        "upper": key.upper(),
        "percent_upper": _percent(key),
        "percent_lower": _percent(key, upper=False),
        "percent_partial": _percent(key, every=3),
        "percent_twice": "".join("%%25%02X" % ord(c) for c in key),
        "json_u_upper": "".join("\\u%04X" % ord(c) for c in key),
        "json_u_lower_partial": "".join("\\u%04x" % ord(c) if i % 2 else c for i, c in enumerate(key)),
        "json_slash": key.replace("/", "\\/"),
    }


def message(form):
    return 'HTTP 400 BadParams: request {"headers": ["%s"]} refused' % form


SCRUBBED = message("[redacted]")
KEPT = ["HTTP 500 GenericError: Internal server error", "Iterable rejected the email: failedUpdates.invalidEmails",
        "HTTP 400: bad request api_key=[redacted]&x=1", "ak.Sekr3t/(x)+Re$d^act[9]|*?{2 (a prefix of the key)"]


@pytest.fixture
def old_db(cluster, emulator):
    admin = cluster.connect()
    with admin.cursor() as cur:
        cur.execute("CREATE DATABASE upgrade_scrub")
    admin.close()
    conn = cluster.connect(dbname="upgrade_scrub")
    yield conn
    conn.close()
    admin = cluster.connect()
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE upgrade_scrub WITH (FORCE)")
    admin.close()


def test_upgrade_scrubs_keys_from_logs_already_written(old_db, emulator):
    db = old_db
    with db.cursor() as cur:
        cur.execute("CREATE EXTENSION iterable_audience VERSION '0.1.0'")
        for name, key in KEYS.items():
            cur.execute("SELECT iterable_audience.create_account(%s, %s, base_url => %s)", (name, key, emulator.url))
        cur.execute("CREATE TABLE src (email text)")
    runs, batches = {}, {}
    run_id = 100
    for name, key in KEYS.items():
        account_id = scalar(db, "SELECT account_id FROM iterable_audience.account WHERE account_name = %s", (name,))
        sync_id = scalar(db, "INSERT INTO iterable_audience.sync (sync_name, owner, account_id, source, "
                             "source_search_path, list_id, email_column) "
                             "VALUES (%s, 10, %s, 'src', 'public', 1, 'email') RETURNING sync_id",
                         (name, account_id))
        for form_name, form in forms(key).items():
            run_id += 1
            runs[run_id] = message(form)
            # A batch as 0.1.0 wrote it: the failed records' messages, NULL for those that succeeded,
            # enough records for the arrays to be compressed (lz4) out of line.
            msgs = [message(form), None, KEPT[run_id % len(KEPT)]] * 700
            batches[run_id] = msgs
            with db.cursor() as cur:
                cur.execute("INSERT INTO iterable_audience.sync_runs (run_id, sync_id, sync_name, trigger, status, error) "
                            "OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s, 'manual', 'failed', %s)",
                            (run_id, sync_id, name, message(form)))
                n = len(msgs)
                cur.execute("INSERT INTO iterable_audience.sync_batch (run_id, batch_no, sync_id, kind, action, logged, "
                            "answered_at, record_keys, operations, emails, user_ids, row_hashes, error_codes, "
                            "error_messages) VALUES (%s, 1, %s, 'sent', 'subscribe', true, now(), "
                            "array_fill('k'::text, ARRAY[%s]), array_fill('upsert'::text, ARRAY[%s]), "
                            "array_fill('a@example.com'::text, ARRAY[%s]), array_fill(''::text, ARRAY[%s]), "
                            "array_fill(0::bigint, ARRAY[%s]), array_fill('http_error'::text, ARRAY[%s]), %s)",
                            (run_id, sync_id, n, n, n, n, n, n, msgs))
        # Runs and batches without a key are kept as they are.
        run_id += 1
        runs[run_id] = KEPT[0]
        batches[run_id] = list(KEPT) + [None]
        with db.cursor() as cur:
            cur.execute("INSERT INTO iterable_audience.sync_runs (run_id, sync_id, sync_name, trigger, status, error) "
                        "OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s, 'manual', 'failed', %s)",
                        (run_id, sync_id, name, KEPT[0]))
            cur.execute("INSERT INTO iterable_audience.sync_batch (run_id, batch_no, sync_id, kind, action, logged, "
                        "answered_at, record_keys, operations, emails, user_ids, row_hashes, error_messages) "
                        "VALUES (%s, 1, %s, 'sent', 'subscribe', true, now(), '{a,b,c,d,e}', "
                        "'{upsert,upsert,upsert,upsert,upsert}', '{a,b,c,d,e}', array_fill(''::text, ARRAY[5]), '{0,0,0,0,0}', %s)",
                        (run_id, sync_id, batches[run_id]))

    # The arrays written are stored compressed, and the key is readable in them before the upgrade.
    assert scalar(db, "SELECT count(*) FROM iterable_audience.sync_batch "
                      "WHERE pg_column_compression(error_messages) = 'lz4'") >= 2 * len(forms("x"))
    logged = [r["error_message"] for r in query(db, "SELECT error_message FROM iterable_audience.sync_logs")]
    assert any(leaks(m, KEYS["first"]) for m in logged) and any(leaks(m, KEYS["second"]) for m in logged)

    with db.cursor() as cur:
        cur.execute("ALTER EXTENSION iterable_audience UPDATE")
    assert scalar(db, "SELECT extversion FROM pg_extension WHERE extname = 'iterable_audience'") == "0.2.0"

    for row in query(db, "SELECT run_id, error FROM iterable_audience.sync_runs ORDER BY run_id"):
        expected = runs[row["run_id"]]
        assert row["error"] == (expected if expected in KEPT else SCRUBBED), row
    for row in query(db, "SELECT run_id, error_messages FROM iterable_audience.sync_batch ORDER BY run_id"):
        expected = [m if m is None or m in KEPT else SCRUBBED for m in batches[row["run_id"]]]
        assert row["error_messages"] == expected, row["run_id"]
    logged = [r["error_message"] for r in query(db, "SELECT error_message FROM iterable_audience.sync_logs")]
    assert logged and not [m for m in logged if any(leaks(m, key) for key in KEYS.values())]
