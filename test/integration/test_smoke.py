from harness import query, scalar


def test_first_sync_mirrors_a_table(db, emulator):
    with db.cursor() as cur:
        cur.execute("CREATE TABLE people AS SELECT g AS id, 'p' || g || '@example.com' AS email FROM generate_series(1, 100) g")
        cur.execute("SELECT iterable_audience.create_sync('smoke', 'email', 'people', new_list_name => 'smoke', "
                    "email_column => 'email')")
    run = query(db, "SELECT * FROM iterable_audience.run_sync('smoke')")[0]
    assert run["status"] == "succeeded", run
    list_id = scalar(db, "SELECT list_id FROM iterable_audience.syncs WHERE sync_name = 'smoke'")
    assert emulator.member_keys(list_id) == {"p%d@example.com" % i for i in range(1, 101)}
