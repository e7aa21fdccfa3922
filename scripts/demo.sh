#!/usr/bin/env bash
# The main job, end to end on the embedded default: a temporary PostgreSQL cluster with the extension
# and the project's Iterable emulator on loopback. Registers an account, creates a list, mirrors a
# table of customers into it, changes the audience, syncs again, and shows the run reports, a few
# log rows and what the emulator's list holds; then a user sync, and the emulator's profiles; then
# event syncs of a tracks table and an orders table, and the events and purchases the emulator stored.
# Cleans up after itself.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

# IA_DEMO_SKIP_BUILD=1: use the extension as installed (the test of the demo's output does).
if [ -z "${IA_DEMO_SKIP_BUILD:-}" ]; then
	"$ROOT/scripts/install-deps.sh"
	make -j"$(nproc)" >/dev/null
	make install >/dev/null
fi

work="$(make_pg_tmpdir)"
port="$(free_port)"
cleanup() {
	as_pg_user "$(pg_bindir)/pg_ctl" -D "$work/data" -m fast stop >/dev/null 2>&1 || true
	[ -n "${EMULATOR_PID:-}" ] && kill "$EMULATOR_PID" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

echo "== starting a temporary cluster (port $port) and the Iterable emulator"
as_pg_user "$(pg_bindir)/initdb" -D "$work/data" -A trust -E UTF8 --locale=C --no-sync -U postgres >/dev/null
cat >>"$work/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$work'
shared_preload_libraries = 'iterable_audience'
CONF
as_pg_user "$(pg_bindir)/pg_ctl" -D "$work/data" -l "$work/server.log" -w start >/dev/null
start_emulator "$work"
echo "   emulator: $EMULATOR_URL"

psql_demo() {
	as_pg_user "$(pg_bindir)/psql" -X -q -h "$work" -p "$port" -U postgres -d postgres \
		-v ON_ERROR_STOP=1 -v emulator_url="$EMULATOR_URL" "$@"
}

psql_demo <<'SQL'
\echo '== 1. the extension, an account (the emulator''s hybrid project) and its lists'
CREATE EXTENSION iterable_audience;
SELECT iterable_audience.create_account('marketing', 'test-key-hybrid', base_url => :'emulator_url');
SELECT * FROM iterable_audience.accounts;
SELECT iterable_audience.test_account('marketing') AS test_account;
SELECT iterable_audience.create_list('marketing', 'Newsletter', 'made by the demo') AS newsletter_list_id;
SELECT list_id, list_name, list_type, description FROM iterable_audience.lists('marketing');

\echo '== 2. an audience: 5000 customers, a few of them with bad identifiers'
CREATE TABLE customers (id int PRIMARY KEY, email text, user_id text, first_name text, plan text, vip boolean);
INSERT INTO customers
SELECT g, 'Customer' || g || '@Example.com', 'cust-' || g, 'Name' || g,
       (ARRAY['free', 'pro', 'enterprise'])[1 + g % 3], g % 5 = 0
  FROM generate_series(1, 5000) g;
UPDATE customers SET email = 'not-an-email', user_id = NULL WHERE id = 7;
UPDATE customers SET user_id = 'a userId that is far too long for Iterable, over 52 chars', email = NULL WHERE id = 8;

\echo '== 3. a sync: the VIP customers (a query) mirror into a new list'
SELECT iterable_audience.create_sync('vip', 'marketing',
       'SELECT id, email, user_id, first_name, plan FROM customers WHERE vip OR id IN (7, 8)',
       new_list_name => 'VIP customers', email_column => 'email', user_id_column => 'user_id',
       data_fields => '{"firstName": "first_name", "plan": "plan"}') AS sync_id;
SELECT sync_name, account_name, list_id, email_column, user_id_column, data_fields, schedule FROM iterable_audience.syncs;

\echo '== 4. dry run: what the first run would send (no call to Iterable)'
SELECT action, operation, valid, error_code, count(*) FROM iterable_audience.preview_sync('vip') GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3 DESC;

\echo '== 5. first run (this session listens for the alert every finished run sends)'
LISTEN iterable_audience;
SELECT run_id, status, audience_rows, planned_subscribes, planned_unsubscribes, subscribed, unsubscribed, failed, api_requests
  FROM iterable_audience.run_sync('vip');
SELECT record_key, status, error_code, error_message FROM iterable_audience.sync_logs WHERE status = 'failed';

\echo '== 6. the audience changes: 100 leave, 50 join, 30 change plan, 10 change email'
UPDATE customers SET vip = false WHERE id IN (SELECT id FROM customers WHERE vip ORDER BY id LIMIT 100);
UPDATE customers SET vip = true WHERE id IN (SELECT id FROM customers WHERE id % 5 <> 0 AND id > 10 ORDER BY id LIMIT 50);
UPDATE customers SET plan = 'enterprise' WHERE id IN (SELECT id FROM customers WHERE vip AND plan <> 'enterprise' ORDER BY id DESC LIMIT 30);
UPDATE customers SET email = 'new-' || id || '@example.com' WHERE id IN (SELECT id FROM customers WHERE vip ORDER BY id DESC OFFSET 100 LIMIT 10);
SELECT action, operation, count(*) FROM iterable_audience.preview_sync('vip') WHERE valid GROUP BY 1, 2 ORDER BY 1, 2;

\echo '== 7. second run, then a third with nothing to do (sends no request)'
SELECT run_id, status, audience_rows, planned_subscribes, planned_unsubscribes, subscribed, unsubscribed, failed, api_requests
  FROM iterable_audience.run_sync('vip');
SELECT run_id, status, planned_subscribes, planned_unsubscribes, api_requests FROM iterable_audience.run_sync('vip');

\echo '== 8. the run report and a few log rows'
SELECT run_id, trigger, status, audience_rows, planned_subscribes AS plan_sub, planned_unsubscribes AS plan_unsub,
       subscribed, unsubscribed, failed, api_requests, finished_at - started_at AS took, snapshot_table
  FROM iterable_audience.sync_runs ORDER BY run_id;
SELECT run_id, operation, action, record_key, email, status FROM iterable_audience.sync_logs
 WHERE run_id = 2 ORDER BY operation, record_key LIMIT 6;
SELECT count(*) AS list_members_in_snapshot FROM iterable_audience_snapshots.vip_run_2;

\echo '== 9. health: the last run, the last success, failures in a row, overdue'
SELECT sync_name, kind, paused, last_run_status, consecutive_failures, failed_records_last_run, overdue
  FROM iterable_audience.sync_health;
SQL

echo "== 10. what the emulator's list holds"
list_id=$(psql_demo -At -c "SELECT list_id FROM iterable_audience.syncs WHERE sync_name = 'vip'")
members=$("$PYTHON" -c "import json,sys,urllib.request; print(len(json.load(urllib.request.urlopen('$EMULATOR_URL/_emulator/lists/$list_id/members'))))")
expected=$(psql_demo -At -c "SELECT count(*) FROM customers WHERE vip")
echo "   emulator list $list_id has $members members; the audience has $expected valid rows"
[ "$members" = "$expected" ] && echo "   the list mirrors the audience" || { echo "   MISMATCH" >&2; exit 1; }

psql_demo <<'SQL'
\echo == 10. a user sync: the plan and VIP flag of every customer follow into the Iterable profile
SELECT iterable_audience.create_user_sync('profiles', 'marketing', 'customers',
       email_column => 'email', user_id_column => 'user_id',
       data_fields => '{"firstName": "first_name", "plan": "plan", "vip": "vip"}') AS sync_id;
SELECT action, operation, valid, error_code, count(*) FROM iterable_audience.preview_sync('profiles') GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3 DESC;
SELECT run_id, kind, status, planned_updates, updated, failed, api_requests FROM iterable_audience.run_sync('profiles');
\echo    ... 25 customers change plan: only they are sent
UPDATE customers SET plan = 'pro' WHERE id IN (SELECT id FROM customers WHERE plan = 'free' ORDER BY id LIMIT 25);
SELECT run_id, kind, status, planned_updates, updated, failed, api_requests FROM iterable_audience.run_sync('profiles');
SELECT run_id, operation, action, record_key, status FROM iterable_audience.sync_logs
 WHERE action = 'update_user' ORDER BY run_id DESC, record_key LIMIT 3;
SQL

echo "== 11. the emulator's profiles (dataFields keep their JSON types)"
for uid in cust-3 cust-5; do
	"$PYTHON" -c "import json,urllib.request; print('   ', json.dumps(json.load(urllib.request.urlopen('$EMULATOR_URL/_emulator/users?api_key=test-key-hybrid&userId=$uid'))['users'][0]))"
done
plans=$(psql_demo -At -c "SELECT count(*) FROM customers WHERE plan = 'pro' AND user_id IS NOT NULL AND email <> 'not-an-email'")
pro=$("$PYTHON" -c "import json,urllib.request; print(sum(1 for u in json.load(urllib.request.urlopen('$EMULATOR_URL/_emulator/users?api_key=test-key-hybrid'))['users'] if u['dataFields'].get('plan') == 'pro'))")
echo "   $pro profiles have plan 'pro' in the emulator; the table has $plans such customers with valid identifiers"
[ "$pro" = "$plans" ] && echo "   the profiles follow the table" || { echo "   MISMATCH" >&2; exit 1; }

psql_demo <<'SQL'
\echo == 12. event syncs: a tracks table streams into Iterable events, an orders table into purchases
CREATE TABLE tracks (id bigserial PRIMARY KEY, user_id text, event text, ts timestamptz DEFAULT now(), properties jsonb);
INSERT INTO tracks (user_id, event, properties)
SELECT 'cust-' || g, CASE WHEN g % 3 = 0 THEN 'Added to Cart' ELSE 'Viewed Product' END,
       jsonb_build_object('sku', 'sku-' || (g % 7), 'price', g % 50)
  FROM generate_series(1, 40) g;
INSERT INTO tracks (user_id, event, properties) VALUES (NULL, 'Viewed Product', '{}');  -- no identifier
SELECT iterable_audience.create_event_sync('tracks', 'marketing', 'tracks', 'id',
       fields => '{"eventName": "event", "userId": "user_id", "createdAt": "ts", "dataFields": "properties"}') AS sync_id;
SELECT run_id, kind, status, planned_events, tracked, failed, cursor_from, cursor_to FROM iterable_audience.run_sync('tracks');
\echo    ... an idle run sends nothing; 5 new rows are sent once
SELECT run_id, status, planned_events, tracked, api_requests FROM iterable_audience.run_sync('tracks');
INSERT INTO tracks (user_id, event, properties) SELECT 'cust-' || g, 'Viewed Product', '{}' FROM generate_series(41, 45) g;
SELECT run_id, status, planned_events, tracked, cursor_from, cursor_to FROM iterable_audience.run_sync('tracks');
SELECT record_key, action, user_id, status, error_code FROM iterable_audience.sync_logs
 WHERE action = 'track' AND (status = 'failed' OR run_id = (SELECT max(run_id) FROM iterable_audience.sync_runs)) ORDER BY record_key LIMIT 4;

CREATE TABLE orders (id bigserial PRIMARY KEY, order_id text, user_id text, total numeric, items jsonb,
                     ts timestamptz DEFAULT now());
INSERT INTO orders (order_id, user_id, total, items)
SELECT 'order-' || g, 'cust-' || g, 19.5 * g,
       jsonb_build_array(jsonb_build_object('id', 'sku-' || g, 'name', 'Shoe', 'price', 19.5, 'quantity', g))
  FROM generate_series(1, 5) g;
SELECT iterable_audience.create_event_sync('orders', 'marketing', 'orders', 'id', kind => 'purchase',
       fields => '{"id": "order_id", "userId": "user_id", "total": "total", "items": "items", "createdAt": "ts"}') AS sync_id;
SELECT record_key, action, valid, data_fields->'items' AS items FROM iterable_audience.preview_sync('orders') LIMIT 2;
SELECT run_id, kind, status, planned_events, tracked, failed FROM iterable_audience.run_sync('orders');
SQL

echo "== 13. what the emulator received: events and purchases, each stored once"
"$PYTHON" - "$EMULATOR_URL" <<'PY'
import json, sys, urllib.request
url = sys.argv[1]
get = lambda path: json.load(urllib.request.urlopen(url + path))
events = [e for e in get("/_emulator/events?api_key=test-key-hybrid")["events"] if e.get("userId", "").startswith("cust-")]
purchases = [p for p in get("/_emulator/purchases?api_key=test-key-hybrid")["purchases"] if p["id"].startswith("order-")]
print("   %d events (%s), %d purchases; writes per id: %s" % (
    len(events), ", ".join("%s x%d" % (n, sum(1 for e in events if e["eventName"] == n))
                           for n in sorted({e["eventName"] for e in events})),
    len(purchases), sorted({e["writes"] for e in events + purchases})))
print("   e.g.", json.dumps({k: events[0][k] for k in ("id", "eventName", "userId", "createdAt", "dataFields")}))
print("   e.g.", json.dumps({k: purchases[0][k] for k in ("id", "total", "items")}))
if len(events) != 45 or len(purchases) != 5 or any(e["writes"] != 1 for e in events + purchases):
    sys.exit("   MISMATCH")
print("   every row of the tables once")
PY
