"""Issue 16: the API key is redacted by value from every text that came from Iterable.

The emulator is scripted to answer each endpoint a sync uses with an error (and with a 2xx body that
is not in the documented shape) whose body quotes the account's key: bare, in another letter case,
percent-encoded (wholly or partly) and JSON-escaped (\\u00XX, escaped slash, twice). Then no form of
the key may be in sync_logs, sync_runs.error, the text of an ERROR or NOTICE the client sees, the
answer of test_account(), the NOTIFY payloads of finished runs, or the server log at
log_min_messages = debug1; and the marker
"[redacted]" must be there, which proves that each quoted body did reach the place checked.

Parametrized by kind of sync (KINDS): a kind says how to create a sync of it, which endpoints its
runs call and how to change its source so that the next run calls every one of them. The user and
event syncs of version 0.2 add one entry each."""

import json
import re
import time
import urllib.parse

import psycopg2
import pytest

from harness import Cluster, query, scalar

KEY = "Ak_Sekr3t/Redact-9F3b0C7d"
ACCOUNT = "redact"
OWNER = "redact_owner"
MARKER = "[redacted]"


def _percent(text, upper=True, every=1):
    fmt = "%%%02X" if upper else "%%%02x"
    return "".join(fmt % ord(c) if i % every == 0 else c for i, c in enumerate(text))


# How the key is quoted in the answer bodies, as raw text inside a JSON string literal.
FORMS = {
    "bare": KEY,
    "lower_case": KEY.lower(),
    "upper_case": KEY.upper(),
    "mixed_case": KEY.swapcase(),
    "percent_upper": _percent(KEY),
    "percent_lower_partial": _percent(KEY, upper=False, every=2),
    "json_u_escapes": "".join("\\u%04x" % ord(c) if i % 3 else "\\u%04X" % ord(c) for i, c in enumerate(KEY)),
    "json_escaped_slash": KEY.replace("/", "\\/"),
    "json_in_json": "".join("\\\\u%04X" % ord(c) for c in KEY),  # a JSON text quoted in a JSON string
    "percent_twice": "".join("%%25%02X" % ord(c) for c in KEY),
}

# Statuses of the scripted error answers, rotated over the forms (every form gets one per endpoint).
SEND_STATUSES = [400, 409, 422, 429, 500, 503]
CHECK_STATUSES = [400, 401, 403, 404, 500]


def _json_unescape(text):
    return re.sub(r'\\(?:u([0-9a-fA-F]{4})|(["\\/]))',
                  lambda m: chr(int(m.group(1), 16)) if m.group(1) else m.group(2), text)


def _unquote(text):
    return urllib.parse.unquote(text, errors="replace")


def leaks(text, key=KEY):
    """Whether text holds the key: as is, or after undoing one or two levels of percent- or
    JSON-escaping, in any letter case. Written here, independently of src/core/redaction.cpp."""
    if text is None:
        return False
    key = key.lower()
    once = [text, _unquote(text), _json_unescape(text)]
    twice = [f(t) for t in once[1:] for f in (_unquote, _json_unescape)]
    return any(key in t.lower() for t in once + twice)


def test_the_leak_detector_sees_every_form():
    for name, form in FORMS.items():
        assert leaks("x %s y" % form), name
    assert not leaks("x [redacted] y %s" % KEY[:-1])


def error_body(form, what):
    """An Iterable-looking error envelope whose msg echoes the request, quoting the key."""
    return '{"msg":"%s: request {\\"headers\\": [\\"%s\\"]} refused","code":"BadParams","params":null}' % (what, form)


def status_rule(endpoint, status, form):
    return {"kind": "status", "endpoint": endpoint, "api_key": KEY, "status": status,
            "body": error_body(form, endpoint), "content_type": "application/json"}


def shape_rule(endpoint, form):
    """A 200 whose body is not JSON (so it is quoted in the error) and quotes the key."""
    return {"kind": "malformed_json", "endpoint": endpoint, "api_key": KEY,
            "body": '{"successCount":1,"echo":"%s", "lists":[' % form}


class ListSync:
    """The list mirror (version 0.1)."""
    check_endpoint = "get_lists"          # the run's preflight
    send_endpoints = ("unsubscribe", "subscribe")
    actions = {"unsubscribe": "unsubscribe", "subscribe": "subscribe"}  # endpoint -> sync_logs.action
    check_reads_body = True               # the preflight parses the lists to find the sync's list
    # SQL functions of this kind that call Iterable outside a run, with the endpoint they call.
    functions = (("SELECT * FROM iterable_audience.check_list(%s)", "get_users"),)

    def create(self, admin, owner, sync, account):
        with admin.cursor() as cur:
            cur.execute("CREATE TABLE %s_src (email text)" % sync)
            cur.execute("INSERT INTO %s_src SELECT '%s' || g || '@example.com' FROM generate_series(1, 3) g"
                        % (sync, sync))
            cur.execute("GRANT SELECT ON %s_src TO %s" % (sync, OWNER))
        with owner.cursor() as cur:
            cur.execute("SELECT iterable_audience.create_sync(%s, %s, %s, new_list_name => %s, email_column => 'email')",
                        (sync, account, "public.%s_src" % sync, sync))

    def change(self, admin, sync):
        """The next run unsubscribes one record and subscribes another."""
        with admin.cursor() as cur:
            cur.execute("DELETE FROM %s_src WHERE email = '%s1@example.com'" % (sync, sync))
            cur.execute("INSERT INTO %s_src VALUES ('%s9@example.com')" % (sync, sync))


class UserSync:
    """Profile fields follow a table (version 0.2, POST /api/users/bulkUpdate)."""
    check_endpoint = "get_lists"          # the run's preflight proves the key with GET /api/lists
    send_endpoints = ("bulk_update_users",)
    actions = {"bulk_update_users": "update_user"}
    check_reads_body = False              # only the key is checked: a 2xx answer is enough
    functions = ()

    def create(self, admin, owner, sync, account):
        with admin.cursor() as cur:
            cur.execute("CREATE TABLE %s_src (email text, plan text)" % sync)
            cur.execute("INSERT INTO %s_src SELECT '%s' || g || '@example.com', 'basic' FROM generate_series(1, 3) g"
                        % (sync, sync))
            cur.execute("GRANT SELECT ON %s_src TO %s" % (sync, OWNER))
        with owner.cursor() as cur:
            cur.execute("SELECT iterable_audience.create_user_sync(%s, %s, %s, email_column => 'email', "
                        "data_fields => '{\"plan\": \"plan\"}')", (sync, account, "public.%s_src" % sync))

    def change(self, admin, sync):
        """The next run updates every profile again."""
        with admin.cursor() as cur:
            cur.execute("UPDATE %s_src SET plan = plan || '+'" % sync)


class EventSync:
    """An event sync of purchases (version 0.2): each new row is one commerce/trackPurchase request,
    whose action in sync_logs is the endpoint's name."""
    check_endpoint = "get_lists"
    send_endpoints = ("track_purchase",)
    actions = {"track_purchase": "track_purchase"}
    check_reads_body = True
    functions = ()

    def create(self, admin, owner, sync, account):
        with admin.cursor() as cur:
            cur.execute("CREATE TABLE %s_src (id bigserial PRIMARY KEY, email text, items jsonb, total numeric)" % sync)
            cur.execute("INSERT INTO %s_src (email, items, total) SELECT '%s' || g || '@example.com', "
                        "'[{\"id\": \"a\", \"name\": \"A\", \"price\": 1, \"quantity\": 1}]', 1 "
                        "FROM generate_series(1, 3) g" % (sync, sync))
            cur.execute("GRANT SELECT ON %s_src TO %s" % (sync, OWNER))
        with owner.cursor() as cur:
            cur.execute("SELECT iterable_audience.create_event_sync(%s, %s, %s, 'id', kind => 'purchase', "
                        "fields => '{\"email\": \"email\", \"items\": \"items\", \"total\": \"total\"}')",
                        (sync, account, "public.%s_src" % sync))

    def change(self, admin, sync):
        """The next run sends one new purchase."""
        with admin.cursor() as cur:
            cur.execute("INSERT INTO %s_src (email, items, total) SELECT '%s9@example.com', items, total FROM %s_src "
                        "LIMIT 1" % (sync, sync, sync))


KINDS = {"list": ListSync(), "users": UserSync(), "events": EventSync()}


@pytest.fixture(scope="module")
def debug_cluster(emulator):
    c = Cluster(extra_conf={"log_min_messages": "debug1", "log_error_verbosity": "verbose"})
    try:
        emulator.call("POST", "/_emulator/projects", {"api_key": KEY, "project_type": "hybrid"})
    except AssertionError as e:  # already there from an earlier run in this emulator
        assert "409" in str(e)
    admin = c.connect()
    with admin.cursor() as cur:
        cur.execute("CREATE EXTENSION iterable_audience")
        cur.execute("CREATE ROLE %s LOGIN" % OWNER)
        cur.execute("GRANT USAGE ON SCHEMA iterable_audience, iterable_audience_snapshots TO %s" % OWNER)
    admin.close()
    yield c
    c.destroy()


def _create_account(admin, name, url):
    """An account with the key, one per test: getUsers (check_list) is paced per account."""
    with admin.cursor() as cur:
        # The statement would log the literal at debug1: keep it out of the log (SECURITY.md).
        cur.execute("SET log_min_messages = warning")
        cur.execute("SET log_statement = 'none'")
        cur.execute("SELECT iterable_audience.create_account(%s, %s, base_url => %s)", (name, KEY, url))
        cur.execute("RESET log_min_messages")
        cur.execute("SELECT iterable_audience.grant_account_usage(%s, %s)", (name, OWNER))


def _session(cluster, user):
    conn = cluster.connect(user=user)
    with conn.cursor() as cur:
        cur.execute("SET iterable_audience.retry_base_delay_ms = 10")
        cur.execute("SET iterable_audience.retry_max_delay_ms = 50")
        cur.execute("SET iterable_audience.max_attempts = 2")
    return conn


def _error_text(err):
    d = err.diag
    return "\n".join(x for x in (str(err), d.message_primary, d.message_detail, d.message_hint, d.context) if x)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("form", sorted(FORMS))
def test_no_form_of_the_key_is_stored_raised_or_logged(debug_cluster, emulator, kind, form):
    k = KINDS[kind]
    i = sorted(FORMS).index(form)
    quoted = FORMS[form]
    sync = "rd_%s_%s" % (kind, form)
    admin = _session(debug_cluster, "postgres")
    owner = _session(debug_cluster, OWNER)
    account = "%s_%s_%s" % (ACCOUNT, kind, form)
    seen = []  # every text the client was given: ERROR texts, test_account() answers
    listener = debug_cluster.connect()
    with listener.cursor() as cur:
        cur.execute("LISTEN iterable_audience")
    emulator.clear_faults()
    _create_account(admin, account, emulator.url)
    k.create(admin, owner, sync, account)
    first = query(owner, "SELECT * FROM iterable_audience.run_sync(%s)", (sync,))[0]
    assert first["status"] == "succeeded", first

    # 1. Every endpoint of the send answers an error quoting the key.
    k.change(admin, sync)
    rules = [status_rule(ep, SEND_STATUSES[(i + n) % len(SEND_STATUSES)], quoted) for n, ep in enumerate(k.send_endpoints)]
    emulator.set_faults({"rules": rules})
    sent = query(owner, "SELECT * FROM iterable_audience.run_sync(%s)", (sync,))[0]
    fired = {r["endpoint"]: r["fired"] for r in emulator.state()["faults"]["rules"]}
    assert all(fired[ep] > 0 for ep in k.send_endpoints), fired  # each endpoint was called and answered so
    assert sent["status"] in ("succeeded_with_failures", "failed"), sent
    failed_logs = query(owner, "SELECT action, error_message FROM iterable_audience.sync_logs "
                               "WHERE run_id = %s AND status = 'failed'", (sent["run_id"],))
    for ep in k.send_endpoints:
        quoting = [r["error_message"] for r in failed_logs
                   if r["action"] == k.actions[ep] and ep + ": request" in r["error_message"]]
        assert quoting and all(MARKER in m for m in quoting), (ep, failed_logs)

    # 2. The preflight's endpoint answers an error quoting the key: the run fails with it in its error,
    #    and so do the SQL functions calling that endpoint.
    status = CHECK_STATUSES[i % len(CHECK_STATUSES)]
    emulator.set_faults({"rules": [status_rule(k.check_endpoint, status, quoted),
                                   status_rule("create_list", status, quoted)] +
                                  [status_rule(ep, status, quoted) for _, ep in k.functions]})
    checked = query(owner, "SELECT * FROM iterable_audience.run_sync(%s)", (sync,))[0]
    assert checked["status"] == "failed" and MARKER in checked["error"], checked
    answer = scalar(owner, "SELECT iterable_audience.test_account(%s)", (account,))
    assert MARKER in answer, answer
    seen.append(answer)
    for statement, args in [("SELECT * FROM iterable_audience.lists(%s)", (account,)),
                            ("SELECT iterable_audience.create_list(%s, 'x')", (account,)),
                            ("SELECT iterable_audience.create_sync(%s, %s, 'public.' || %s, new_list_name => 'n', "
                             "email_column => 'email')", (sync + "_b", account, sync + "_src"))] + \
            [(statement, (sync,)) for statement, _ in k.functions]:
        with pytest.raises(psycopg2.Error) as err:
            query(owner, statement, args)
        text = _error_text(err.value)
        assert MARKER in text, text
        seen.append(text)

    # 3. 2xx answers not in the documented shape quote the body in the errors they cause.
    emulator.set_faults({"rules": [shape_rule(k.check_endpoint, quoted)]})
    shaped = query(owner, "SELECT * FROM iterable_audience.run_sync(%s)", (sync,))[0]
    if k.check_reads_body:
        assert shaped["status"] == "failed" and MARKER in shaped["error"], shaped
    with pytest.raises(psycopg2.Error) as err:
        query(owner, "SELECT * FROM iterable_audience.lists(%s)", (account,))
    assert MARKER in _error_text(err.value)
    seen.append(_error_text(err.value))
    if shaped["status"] != "failed":
        k.change(admin, sync)  # that run sent everything: something to send again
    emulator.set_faults({"rules": [shape_rule(ep, quoted) for ep in k.send_endpoints]})
    bodies = query(owner, "SELECT * FROM iterable_audience.run_sync(%s)", (sync,))[0]
    invalid = query(owner, "SELECT action, error_message FROM iterable_audience.sync_logs "
                           "WHERE run_id = %s AND error_code = 'invalid_response'", (bodies["run_id"],))
    assert {r["action"] for r in invalid} == {k.actions[ep] for ep in k.send_endpoints}, invalid
    assert all(MARKER in r["error_message"] for r in invalid), invalid
    emulator.clear_faults()

    # Nowhere a form of the key: the sync logs and runs (as the owner sees them and as stored), what
    # the client was told (errors, notices), the server log.
    stored = [r["error_message"] for r in query(admin, "SELECT error_message FROM iterable_audience.sync_logs")]
    stored += [r["error"] for r in query(admin, "SELECT error FROM iterable_audience.sync_runs")]
    stored += [m for r in query(admin, "SELECT unnest(error_messages) AS m FROM iterable_audience.sync_batch")
               for m in [r["m"]]]
    stored += [r["error"] for r in query(owner, "SELECT error FROM iterable_audience.sync_runs")]
    assert [t for t in stored if leaks(t)] == []
    assert [t for t in seen + owner.notices + admin.notices if leaks(t)] == []
    for _ in range(100):  # delivered when the runs' workers committed; read them as they come
        listener.poll()
        if any(MARKER in n.payload for n in listener.notifies):
            break
        time.sleep(0.1)
    payloads = [n.payload for n in listener.notifies]
    assert any(MARKER in p for p in payloads), payloads  # the failed runs' errors were notified
    assert [p for p in payloads if leaks(p)] == []
    listener.close()
    log = debug_cluster.server_log()
    assert MARKER in log  # the ERRORs above were logged, with the quoted bodies
    assert [line for line in log.splitlines() if leaks(line)] == []
    admin.close()
    owner.close()
