-- Lists: always asked of Iterable.
SELECT iterable_audience.create_list('emu', 'Newsletter', 'weekly readers');
SELECT iterable_audience.create_list('emu', 'VIP');
SELECT list_id, list_name, list_type, description, created_at > now() - interval '1 hour' AS recent
  FROM iterable_audience.lists('emu') ORDER BY list_id;
SELECT count(*) FROM iterable_audience.lists('emu_email');
SELECT iterable_audience.create_list('emu', '');
SELECT iterable_audience.create_list('emu', NULL);
SELECT iterable_audience.create_list('nobody', 'x');
SELECT * FROM iterable_audience.lists('wrong_key') LIMIT 0;
