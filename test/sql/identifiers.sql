-- The contract's identifier rules, as the plan applies them to every audience row.
SELECT raw, iterable_audience.normalize_email(raw) AS normalized
  FROM (VALUES ('  Foo.Bar+tag@Example.COM  '), ('user@example.com'), ('user @example.com'), ('a@b'),
               ('a@@b.com'), ('@x.com'), ('a@x..com'), ('josé@example.com'), (''), ('   ')) v(raw);
SELECT raw, length(raw), iterable_audience.is_valid_user_id(raw) AS valid
  FROM (VALUES ('u-42'), ('user 42'), (' u42'), ('u42 '), (''), (repeat('x', 52)), (repeat('x', 53)),
               ('ü42'), (E'u\t42')) v(raw);
SELECT iterable_audience.normalize_email(NULL), iterable_audience.is_valid_user_id(NULL);

-- The plan's per-row helpers. values_hash is the hash earlier versions computed in SQL, so that
-- snapshots written before stay comparable: every row must say true.
SELECT e, u, d, iterable_audience.values_hash(e, u, d)
         = hashtextextended(coalesce(e, '') || E'\x1f' || coalesce(u, '') || E'\x1f' || coalesce(d::text, ''), 0)
         AS same_as_sql
  FROM (VALUES ('a@example.com', 'u1', NULL::jsonb), (NULL, 'u1', '{"plan": "pro", "n": 1}'),
               ('a@example.com', NULL, '{"nested": {"x": [1, 2]}}'), (NULL, NULL, NULL), ('', '', '{}'),
               ('ü@example.com', 'u 2', '{"s": "é"}')) v(e, u, d);
-- key_seen_before: false on a key's first row, true on every repeat (and rarely on a first row:
-- none here), within one statement; a new statement starts afresh.
SELECT k, iterable_audience.key_seen_before(k) AS seen
  FROM (VALUES (1, 'a'), (2, 'b'), (3, 'a'), (4, 'c'), (5, 'b'), (6, 'a')) v(n, k) ORDER BY n;
SELECT iterable_audience.key_seen_before('a') AS seen_in_new_statement;
SELECT count(*) FILTER (WHERE iterable_audience.key_seen_before(g::text)) < 2000 AS under_2_percent_flagged
  FROM generate_series(1, 100000) g;
