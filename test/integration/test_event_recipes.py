"""The README's recipes for the tables RudderStack and Segment load (README, "Recipes"): each SQL
block marked `-- recipe: NAME` is run as written against tables shaped like the loaders', and what
Iterable receives is checked."""

import json
import os
import re

from harness import query, scalar
from sync_helpers import KEYS, run_sync, sql, tag

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def recipes():
    with open(README) as f:
        text = f.read()
    blocks = re.findall(r"```sql\n(-- recipe: (\w+)\n.*?)```", text, re.S)
    return {name: body for body, name in blocks}


def test_the_readme_has_the_recipes():
    assert set(recipes()) == {"tracks", "pages", "named_pages", "screens", "order_completed"}


def stored_events(emulator, t):
    events = emulator.call("GET", "/_emulator/events?api_key=%s" % KEYS["hybrid"])["events"]
    return [e for e in events if str(e.get("userId", "")).startswith(t)]


def test_recipes_send_what_rudderstacks_destination_sends(db, emulator):
    t = tag(db)
    users = ["%s-u%d" % (t, g) for g in range(1, 4)]
    emulator.call("POST", "/_emulator/users", {"api_key": KEYS["hybrid"], "users": [{"userId": u} for u in users]})
    sql(db, "SELECT iterable_audience.create_account('marketing', %s, project_type => 'hybrid', base_url => %s)",
        (KEYS["hybrid"], emulator.url))
    sql(db, "CREATE SCHEMA rudder")
    common = 'id text DEFAULT gen_random_uuid()::text, anonymous_id text, user_id text, "timestamp" timestamptz ' \
             "DEFAULT now(), received_at timestamptz DEFAULT now(), uuid_ts timestamptz DEFAULT now()"
    sql(db, "CREATE TABLE rudder.tracks (%s, event text, event_text text)" % common)
    sql(db, "CREATE TABLE rudder.pages (%s, name text, category text, path text, url text, title text)" % common)
    sql(db, "CREATE TABLE rudder.screens (%s, name text)" % common)
    sql(db, "CREATE TABLE rudder.order_completed (%s, order_id text, total numeric, products jsonb)" % common)
    sql(db, "INSERT INTO rudder.tracks (user_id, event) VALUES (%s, 'Signed Up'), (%s, 'Clicked'), (%s, 'Clicked')",
        users)
    sql(db, "INSERT INTO rudder.pages (user_id, name, category, path) VALUES (%s, 'Home', NULL, '/'), "
            "(%s, NULL, 'Docs', '/docs'), (%s, NULL, NULL, '/x')", users)
    sql(db, "INSERT INTO rudder.screens (user_id, name) VALUES (%s, 'Settings'), (%s, NULL)", users[:2])
    sql(db, "INSERT INTO rudder.order_completed (user_id, order_id, total, products) VALUES "
            "(%s, %s || '_1001', 29.5, '[{\"product_id\": \"p1\", \"name\": \"Shoe\", \"price\": 9.5, \"quantity\": 1}, "
            "{\"product_id\": \"p2\", \"name\": \"Sock\", \"price\": 10, \"quantity\": 2}]')", (users[0], t))
    for name in ("tracks", "pages", "named_pages", "screens", "order_completed"):
        sql(db, recipes()[name])
    for sync in ("rs_tracks", "rs_pages", "rs_named_pages", "rs_screens", "rs_orders"):
        r = run_sync(db, sync)
        assert r["status"] == "succeeded" and r["failed"] == 0, (sync, r)
    events = stored_events(emulator, t)
    track_ids = {r["id"] for r in query(db, "SELECT id FROM rudder.tracks")}
    page_ids = {r["id"] for r in query(db, "SELECT id FROM rudder.pages")}
    by_id = {e["id"]: e for e in events}
    # tracks: one event each, under the message id.
    assert sorted(by_id[i]["eventName"] for i in track_ids) == ["Clicked", "Clicked", "Signed Up"]
    # pages: "<name> Page", else "Loaded a Page", with the page's fields.
    assert sorted(by_id[i]["eventName"] for i in page_ids) == ["Home Page", "Loaded a Page", "Loaded a Page"]
    home = next(by_id[i] for i in page_ids if by_id[i]["eventName"] == "Home Page")
    assert home["dataFields"] == {"path": "/"}
    # named pages only, one event name, derived ids.
    named = [e for e in events if e["id"].startswith("ia-")]
    assert sorted(e["dataFields"]["path"] for e in named) == ["/", "/docs"]
    assert {e["eventName"] for e in named} == {"Loaded a Page"}
    # screens.
    assert sorted(e["eventName"] for e in events if e["eventName"].endswith("Screen")) == \
        ["Loaded a Screen", "Settings Screen"]
    assert len(events) == 3 + 3 + 2 + 2
    # order_completed -> a purchase with the products as items.
    purchases = [p for p in emulator.call("GET", "/_emulator/purchases?api_key=%s" % KEYS["hybrid"])["purchases"]
                 if p["id"] == t.replace("_", "-") + "-1001"]
    assert len(purchases) == 1 and purchases[0]["writes"] == 1
    purchase = purchases[0]
    assert purchase["total"] == 29.5
    assert [(i["id"], i["quantity"]) for i in purchase["items"]] == [("p1", 1), ("p2", 2)]
    # Nothing twice.
    for sync in ("rs_tracks", "rs_pages", "rs_named_pages", "rs_screens", "rs_orders"):
        assert run_sync(db, sync)["tracked"] == 0
    assert all(e["writes"] == 1 for e in stored_events(emulator, t))
