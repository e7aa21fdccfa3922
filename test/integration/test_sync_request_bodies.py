"""What a run puts on the wire: batch sizes, both identifiers, dataFields, updateExistingUsersOnly,
and unsubscribe bodies that always carry channelUnsubscribe (and campaignId when set)."""

from harness import query, scalar


def bodies(emulator, endpoint, list_id):
    return [r["body"] for r in emulator.requests(endpoint, limit=1000)
            if isinstance(r.get("body"), dict) and r["body"].get("listId") == list_id]


def test_request_bodies(db, emulator):
    with db.cursor() as cur:
        cur.execute("CREATE TABLE wire (id int, email text, uid text, plan text)")
        cur.execute("INSERT INTO wire SELECT g, 'Wire' || g || '@Example.com', 'wire-' || g, 'p' || (g % 3) "
                    "FROM generate_series(1, 250) g")
        cur.execute("SELECT iterable_audience.create_sync('wire', 'hybrid', 'wire', new_list_name => 'wire', "
                    "email_column => 'email', user_id_column => 'uid', data_fields => '{\"plan\": \"plan\"}', "
                    "campaign_id => 42)")
        cur.execute("SET iterable_audience.batch_size = 100")
    list_id = scalar(db, "SELECT list_id FROM iterable_audience.syncs WHERE sync_name = 'wire'")
    run = query(db, "SELECT * FROM iterable_audience.run_sync('wire')")[0]
    assert run["status"] == "succeeded" and run["subscribed"] == 250

    subscribes = bodies(emulator, "subscribe", list_id)
    assert sorted(len(b["subscribers"]) for b in subscribes) == [50, 100, 100]
    for b in subscribes:
        assert b["updateExistingUsersOnly"] is False
        for s in b["subscribers"]:
            assert s["email"] == s["email"].lower() and s["userId"].startswith("wire-")
            assert set(s["dataFields"]) == {"plan"}

    with db.cursor() as cur:
        cur.execute("DELETE FROM wire WHERE id <= 30")
    run = query(db, "SELECT * FROM iterable_audience.run_sync('wire')")[0]
    assert run["status"] == "succeeded" and run["unsubscribed"] == 30
    unsubscribes = bodies(emulator, "unsubscribe", list_id)
    assert len(unsubscribes) == 1
    body = unsubscribes[0]
    assert body["channelUnsubscribe"] is False and body["campaignId"] == 42
    assert len(body["subscribers"]) == 30
    assert all(set(s) == {"email", "userId"} for s in body["subscribers"])

    with db.cursor() as cur:
        cur.execute("SELECT iterable_audience.alter_sync('wire', channel_unsubscribe => true)")
        cur.execute("DELETE FROM wire WHERE id <= 40")
    query(db, "SELECT * FROM iterable_audience.run_sync('wire')")
    last = bodies(emulator, "unsubscribe", list_id)[-1]
    assert last["channelUnsubscribe"] is True and len(last["subscribers"]) == 10
