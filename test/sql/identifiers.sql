-- The contract's identifier rules, as the plan applies them to every audience row.
SELECT raw, iterable_audience.normalize_email(raw) AS normalized
  FROM (VALUES ('  Foo.Bar+tag@Example.COM  '), ('user@example.com'), ('user @example.com'), ('a@b'),
               ('a@@b.com'), ('@x.com'), ('a@x..com'), ('josé@example.com'), (''), ('   ')) v(raw);
SELECT raw, length(raw), iterable_audience.is_valid_user_id(raw) AS valid
  FROM (VALUES ('u-42'), ('user 42'), (' u42'), ('u42 '), (''), (repeat('x', 52)), (repeat('x', 53)),
               ('ü42'), (E'u\t42')) v(raw);
SELECT iterable_audience.normalize_email(NULL), iterable_audience.is_valid_user_id(NULL);
