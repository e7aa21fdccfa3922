-- Accounts: one Iterable project each; the key is stored for superusers only.
SELECT current_setting('regress.emulator_url') AS emulator_url \gset
SELECT iterable_audience.create_account('emu', 'test-key-hybrid', base_url => :'emulator_url');
SELECT iterable_audience.create_account('emu_email', 'test-key-email', project_type => 'email', base_url => :'emulator_url');
SELECT iterable_audience.create_account('eu', 'an-eu-api-key-0001', data_center => 'eu', project_type => 'USER_ID');
SELECT account_name, data_center, project_type, base_url IS NOT NULL AS has_base_url, api_key_hint
  FROM iterable_audience.accounts ORDER BY account_name;
SELECT iterable_audience.test_account('emu');

-- Bad input: each error names the problem and the fix.
SELECT iterable_audience.create_account('x', 'key-123', data_center => 'APAC');
SELECT iterable_audience.create_account('x', 'key-123', project_type => 'anonymous');
SELECT iterable_audience.create_account('x', 'key-123', data_center => 'EU', project_type => 'email');
SELECT iterable_audience.create_account('emu', 'key-123');
SELECT iterable_audience.create_account('', 'key-123');
SELECT iterable_audience.create_account(NULL, 'key-123');
SELECT iterable_audience.create_account('x', NULL);
SELECT iterable_audience.create_account('x', E'key-123\r\nX-Injected: 1');
SELECT iterable_audience.create_account('x', 'key-123', base_url => 'ftp://example.com');
SELECT iterable_audience.create_account('x', 'key-123', base_url => 'http://api.iterable.com');
SELECT iterable_audience.create_account('x', 'key-123', base_url => 'http://10.0.0.1:8080');
SELECT iterable_audience.create_account('x', 'key-123', base_url => 'https://user:pw@example.com');
SELECT iterable_audience.create_account('x', 'key-123', base_url => 'https://example.com/api?x=1');

-- A wrong key: test_account reports Iterable's own answer.
SELECT iterable_audience.create_account('wrong_key', 'not-a-real-key-1234', base_url => :'emulator_url');
SELECT iterable_audience.test_account('wrong_key');
-- Nothing listens on port 9 (discard): the error names the host, never the key.
SELECT iterable_audience.create_account('unreachable', 'secret-key-abcdef', base_url => 'http://127.0.0.1:9');
-- (curl's connect time varies: shown as N ms)
SELECT regexp_replace(iterable_audience.test_account('unreachable'), '\d+ ms', 'N ms') AS test_account;
DO $$
BEGIN
    PERFORM iterable_audience.lists('unreachable');
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE '%', regexp_replace(SQLERRM, '\d+ ms', 'N ms');
END
$$;
SELECT iterable_audience.test_account('nobody');

-- alter_account: NULL means unchanged; '' clears base_url.
SELECT iterable_audience.alter_account('wrong_key', api_key => 'test-key-hybrid');
SELECT iterable_audience.test_account('wrong_key');
SELECT iterable_audience.alter_account('eu', project_type => 'email');
SELECT iterable_audience.alter_account('eu', data_center => 'US', project_type => 'email');
SELECT account_name, data_center, project_type, api_key_hint FROM iterable_audience.accounts WHERE account_name = 'eu';
SELECT iterable_audience.alter_account('unreachable', base_url => '');
SELECT account_name, base_url FROM iterable_audience.accounts WHERE account_name = 'unreachable';
SELECT iterable_audience.drop_account('unreachable');
SELECT iterable_audience.drop_account('unreachable');

-- Non-superusers: no access to keys; base_url and account changes are reserved.
CREATE ROLE analyst;
GRANT USAGE ON SCHEMA iterable_audience TO analyst;
SET ROLE analyst;
SELECT account_name FROM iterable_audience.accounts ORDER BY 1;
SELECT * FROM iterable_audience.account_secret;
SELECT * FROM iterable_audience.account;
SELECT iterable_audience.create_account('mine', 'key-123');
RESET ROLE;
GRANT EXECUTE ON FUNCTION iterable_audience.create_account(text, text, text, text, text) TO analyst;
SET ROLE analyst;
SELECT iterable_audience.create_account('mine', 'key-123', base_url => 'http://127.0.0.1:1');
SELECT iterable_audience.create_account('mine', 'analyst-key-0001');
SELECT iterable_audience.test_account('emu');
RESET ROLE;
SELECT iterable_audience.drop_account('mine');
REVOKE EXECUTE ON FUNCTION iterable_audience.create_account(text, text, text, text, text) FROM analyst;
-- The key appears in nothing an ordinary role can read.
SET ROLE analyst;
SELECT count(*) AS rows_showing_a_key FROM iterable_audience.accounts a
 WHERE a::text LIKE '%test-key-hybrid%' OR a::text LIKE '%analyst-key-0001%';
RESET ROLE;
REVOKE USAGE ON SCHEMA iterable_audience FROM analyst;
DROP ROLE analyst;
