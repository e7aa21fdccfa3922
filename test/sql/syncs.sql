-- Sync definitions: create, alter, pause, resume, reset, drop, and their bad arguments.
CREATE TABLE customers (id int PRIMARY KEY, email text, user_id text, first_name text, plan text);
INSERT INTO customers VALUES (1, 'ada@example.com', 'u1', 'Ada', 'pro'), (2, 'bob@example.com', 'u2', 'Bob', 'free');
CREATE VIEW pro_customers AS SELECT * FROM customers WHERE plan = 'pro';

SELECT iterable_audience.create_sync('vip', 'emu', 'customers', new_list_name => 'VIP mirror',
       email_column => 'email', user_id_column => 'user_id',
       data_fields => '{"firstName": "first_name", "plan": "plan"}', schedule => 'every 15 minutes');
SELECT iterable_audience.create_sync('pro', 'emu_email', 'SELECT id, email FROM customers WHERE plan = ''pro'';',
       list_id => iterable_audience.create_list('emu_email', 'Pro customers'), email_column => 'email');
SELECT iterable_audience.create_sync('pro_view', 'emu', 'pro_customers', new_list_name => 'Pro', user_id_column => 'user_id',
       schedule => '*/5 * * * *');
SELECT sync_name, account_name, source, email_column, user_id_column, data_fields, schedule, paused,
       next_run_at IS NOT NULL AS scheduled, owner
  FROM iterable_audience.syncs ORDER BY sync_id;

-- Bad arguments.
SELECT iterable_audience.create_sync('vip', 'emu', 'customers', new_list_name => 'x', email_column => 'email');
SELECT iterable_audience.create_sync('', 'emu', 'customers', new_list_name => 'x', email_column => 'email');
SELECT iterable_audience.create_sync('s', 'nobody', 'customers', new_list_name => 'x', email_column => 'email');
SELECT iterable_audience.create_sync('s', 'emu', 'customers', email_column => 'email');
SELECT iterable_audience.create_sync('s', 'emu', 'customers', list_id => 1, new_list_name => 'x', email_column => 'email');
SELECT iterable_audience.create_sync('s', 'emu', 'customers', list_id => 999999, email_column => 'email');
SELECT iterable_audience.create_sync('s', 'emu', 'customers', new_list_name => 'x');
SELECT iterable_audience.create_sync('s', 'emu', 'customers', new_list_name => 'x', email_column => 'emial');
SELECT iterable_audience.create_sync('s', 'emu', 'customers', new_list_name => 'x', email_column => 'email',
       data_fields => '{"firstName": "firstname"}');
SELECT iterable_audience.create_sync('s', 'emu', 'customers', new_list_name => 'x', email_column => 'email',
       data_fields => '["first_name"]');
SELECT iterable_audience.create_sync('s', 'emu', 'customers', new_list_name => 'x', email_column => 'email',
       data_fields => '{"email": "email"}');
SELECT iterable_audience.create_sync('s', 'emu_email', 'customers', new_list_name => 'x', user_id_column => 'user_id');
SELECT iterable_audience.create_sync('s', 'emu_email', 'customers', new_list_name => 'x', email_column => 'email',
       update_existing_users_only => true);
SELECT iterable_audience.create_sync('s', 'emu', 'no_such_table', new_list_name => 'x', email_column => 'email');
SELECT iterable_audience.create_sync('s', 'emu', 'SELECT 1; DROP TABLE customers', new_list_name => 'x', email_column => 'email');
SELECT iterable_audience.create_sync('s', 'emu', 'WITH d AS (DELETE FROM customers RETURNING *) SELECT * FROM d',
       new_list_name => 'x', email_column => 'email');
SELECT iterable_audience.create_sync('s', 'emu', 'DELETE FROM customers', new_list_name => 'x', email_column => 'email');
SELECT iterable_audience.create_sync('s', 'emu', 'customers', new_list_name => 'x', email_column => 'email',
       schedule => 'every 0 minutes');
SELECT iterable_audience.create_sync('s', 'emu', 'customers', new_list_name => 'x', email_column => 'email',
       schedule => 'hourly');
SELECT iterable_audience.create_sync('s', 'emu', 'customers', new_list_name => 'x', email_column => 'email',
       max_removal_fraction => 1.5);
SELECT iterable_audience.create_sync('s', 'emu', 'customers', new_list_name => 'x', email_column => 'email',
       snapshot_retention => 0);
SELECT iterable_audience.create_sync('s', 'emu', 'customers', new_list_name => 'x', email_column => 'email',
       campaign_id => -4);
-- None of the failed calls left a sync behind.
SELECT count(*) FROM iterable_audience.syncs;

-- alter_sync: NULL leaves a setting as it is.
SELECT iterable_audience.alter_sync('vip', schedule => 'every 6 hours starting 02:30', retry_failed_records => false);
SELECT iterable_audience.alter_sync('vip', email_column => 'e_mail');
SELECT iterable_audience.alter_sync('nope', schedule => 'manual');
SELECT sync_name, schedule, retry_failed_records, email_column FROM iterable_audience.syncs WHERE sync_name = 'vip';
SELECT iterable_audience.pause_sync('vip');
SELECT sync_name, paused, next_run_at FROM iterable_audience.syncs WHERE sync_name = 'vip';
SELECT iterable_audience.resume_sync('vip');
SELECT sync_name, paused, next_run_at IS NOT NULL AS scheduled FROM iterable_audience.syncs WHERE sync_name = 'vip';
SELECT iterable_audience.reset_sync('vip');

-- preview_sync: the plan of the first run, with no call to Iterable.
SELECT * FROM iterable_audience.preview_sync('vip') ORDER BY record_key;

-- An account is not dropped while a sync uses it.
SELECT iterable_audience.drop_account('emu_email');

-- Other roles cannot see or touch someone else's sync.
CREATE ROLE outsider;
GRANT USAGE ON SCHEMA iterable_audience TO outsider;
SET ROLE outsider;
SELECT count(*) FROM iterable_audience.syncs;
SELECT iterable_audience.pause_sync('vip');
SELECT * FROM iterable_audience.preview_sync('vip');
SELECT iterable_audience.run_sync('vip');
RESET ROLE;
REVOKE USAGE ON SCHEMA iterable_audience FROM outsider;
DROP ROLE outsider;

SELECT iterable_audience.drop_sync('pro');
SELECT iterable_audience.drop_sync('pro');
SELECT iterable_audience.drop_account('emu_email');
SELECT sync_name FROM iterable_audience.syncs ORDER BY 1;

-- A non-superuser owns a sync on an account a superuser set up and granted to it.
CREATE ROLE marketer;
GRANT USAGE ON SCHEMA iterable_audience, iterable_audience_snapshots TO marketer;
CREATE TABLE marketer_audience (email text);
INSERT INTO marketer_audience VALUES ('m1@example.com'), ('M2@Example.com '), ('nope');
ALTER TABLE marketer_audience OWNER TO marketer;
SET ROLE marketer;
SELECT iterable_audience.create_sync('m', 'emu', 'marketer_audience', new_list_name => 'M', email_column => 'email');
SELECT iterable_audience.grant_account_usage('emu', 'marketer');
RESET ROLE;
SELECT iterable_audience.grant_account_usage('emu', 'marketer');
SELECT iterable_audience.grant_account_usage('emu', 'no_such_role');
SELECT account_name, role_name FROM iterable_audience.account_grants;
SET ROLE marketer;
SELECT iterable_audience.create_sync('m', 'emu', 'marketer_audience', new_list_name => 'M', email_column => 'email') > 0 AS created;
SELECT status, audience_rows, subscribed, failed, api_requests, error FROM iterable_audience.run_sync('m');
-- Its own runs and logs only; not the key.
SELECT sync_name, status FROM iterable_audience.sync_runs;
SELECT record_key, operation, status, error_code FROM iterable_audience.sync_logs ORDER BY record_key;
SELECT sync_name FROM iterable_audience.syncs;
SELECT count(*) AS snapshot_rows FROM iterable_audience_snapshots.m_run_1;
SELECT * FROM iterable_audience.account_secret;
SELECT * FROM iterable_audience.sync;
-- A source cannot take the worker's superuser rights: switching role inside it is refused.
SELECT iterable_audience.create_sync('escape', 'emu',
       'SELECT email FROM marketer_audience WHERE set_config(''role'', ''postgres'', true) IS NOT NULL',
       new_list_name => 'Escape', email_column => 'email') > 0 AS created;
RESET ROLE;
SELECT status, subscribed, error FROM iterable_audience.run_sync('escape');
SELECT iterable_audience.drop_sync('escape');
-- Without the grant, its sync can no longer run, whoever starts it.
SELECT iterable_audience.revoke_account_usage('emu', 'marketer');
SELECT status, subscribed, error FROM iterable_audience.run_sync('m');
SELECT iterable_audience.drop_sync('m');
DROP TABLE marketer_audience;
REVOKE USAGE ON SCHEMA iterable_audience, iterable_audience_snapshots FROM marketer;
DROP ROLE marketer;
