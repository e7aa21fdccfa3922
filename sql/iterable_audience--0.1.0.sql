-- iterable_audience 0.1.0: full install script.
-- Upgrade scripts are named iterable_audience--<from>--<to>.sql and are never edited once released.
\echo Use "CREATE EXTENSION iterable_audience" to load this file. \quit

CREATE SCHEMA iterable_audience_snapshots;
COMMENT ON SCHEMA iterable_audience_snapshots IS 'Snapshot tables of iterable_audience syncs: one per finished run';

------------------------------------------------------------------------------------------------
-- Accounts: one Iterable project each. The API key lives in account_secret, readable by superusers only.
------------------------------------------------------------------------------------------------
CREATE TABLE iterable_audience.account (
    account_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_name text NOT NULL UNIQUE CHECK (account_name <> ''),
    data_center  text NOT NULL CHECK (data_center IN ('US', 'EU')),
    project_type text NOT NULL CHECK (project_type IN ('email', 'user_id', 'hybrid')),
    base_url     text,
    api_key_hint text NOT NULL,
    owner        oid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CHECK (NOT (data_center = 'EU' AND project_type = 'email'))
);

CREATE TABLE iterable_audience.account_secret (
    account_id bigint PRIMARY KEY REFERENCES iterable_audience.account ON DELETE CASCADE,
    api_key    text NOT NULL
);

REVOKE ALL ON iterable_audience.account, iterable_audience.account_secret FROM PUBLIC;

CREATE VIEW iterable_audience.accounts AS
    SELECT account_name, data_center, project_type, base_url, api_key_hint, created_at
      FROM iterable_audience.account;
GRANT SELECT ON iterable_audience.accounts TO PUBLIC;
COMMENT ON VIEW iterable_audience.accounts IS 'Iterable accounts (projects); the API key itself is never shown';

CREATE FUNCTION iterable_audience.create_account(
    account_name text,
    api_key      text,
    data_center  text DEFAULT 'US',
    project_type text DEFAULT 'hybrid',
    base_url     text DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'ia_create_account' LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION iterable_audience.alter_account(
    account_name text,
    api_key      text DEFAULT NULL,
    data_center  text DEFAULT NULL,
    project_type text DEFAULT NULL,
    base_url     text DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'ia_alter_account' LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION iterable_audience.drop_account(account_name text)
RETURNS void AS 'MODULE_PATHNAME', 'ia_drop_account' LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION iterable_audience.test_account(account_name text)
RETURNS text AS 'MODULE_PATHNAME', 'ia_test_account' LANGUAGE C CALLED ON NULL INPUT VOLATILE;

-- Roles other than an account's owner that may use it for lists and syncs (grant_account_usage).
CREATE TABLE iterable_audience.account_usage (
    account_id bigint NOT NULL REFERENCES iterable_audience.account ON DELETE CASCADE,
    grantee    oid NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (account_id, grantee)
);
REVOKE ALL ON iterable_audience.account_usage FROM PUBLIC;

CREATE FUNCTION iterable_audience.grant_account_usage(account_name text, role_name text)
RETURNS void AS 'MODULE_PATHNAME', 'ia_grant_account_usage' LANGUAGE C CALLED ON NULL INPUT VOLATILE;
CREATE FUNCTION iterable_audience.revoke_account_usage(account_name text, role_name text)
RETURNS void AS 'MODULE_PATHNAME', 'ia_revoke_account_usage' LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE VIEW iterable_audience.account_grants AS
    SELECT a.account_name, u.grantee::regrole AS role_name, u.granted_at
      FROM iterable_audience.account_usage u JOIN iterable_audience.account a USING (account_id);
GRANT SELECT ON iterable_audience.account_grants TO PUBLIC;

-- Creating and changing accounts decides where API keys are sent: superusers, or roles they grant it to.
REVOKE EXECUTE ON FUNCTION iterable_audience.create_account(text, text, text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION iterable_audience.alter_account(text, text, text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION iterable_audience.drop_account(text) FROM PUBLIC;

------------------------------------------------------------------------------------------------
-- Lists
------------------------------------------------------------------------------------------------
CREATE FUNCTION iterable_audience.lists(account_name text)
RETURNS TABLE(list_id bigint, list_name text, list_type text, created_at timestamptz, description text)
AS 'MODULE_PATHNAME', 'ia_lists' LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION iterable_audience.create_list(account_name text, list_name text, description text DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'ia_create_list' LANGUAGE C CALLED ON NULL INPUT VOLATILE;

------------------------------------------------------------------------------------------------
-- Seam self-test: proves errors cross the C++/PostgreSQL boundary cleanly in both directions.
------------------------------------------------------------------------------------------------
CREATE FUNCTION iterable_audience._seam_selftest(mode text)
RETURNS text AS 'MODULE_PATHNAME', 'ia_seam_selftest' LANGUAGE C STRICT VOLATILE;
REVOKE EXECUTE ON FUNCTION iterable_audience._seam_selftest(text) FROM PUBLIC;

------------------------------------------------------------------------------------------------
-- Syncs (mirror mode)
------------------------------------------------------------------------------------------------
CREATE TABLE iterable_audience.sync (
    sync_id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sync_name                  text NOT NULL UNIQUE CHECK (sync_name <> ''),
    owner                      oid NOT NULL,
    account_id                 bigint NOT NULL REFERENCES iterable_audience.account,
    source                     text NOT NULL,
    source_search_path         text NOT NULL,
    list_id                    bigint NOT NULL,
    email_column               text,
    user_id_column             text,
    data_fields                jsonb,
    update_existing_users_only boolean NOT NULL DEFAULT false,
    campaign_id                bigint,
    channel_unsubscribe        boolean NOT NULL DEFAULT false,
    schedule                   text NOT NULL DEFAULT 'manual',
    paused                     boolean NOT NULL DEFAULT false,
    next_run_at                timestamptz,
    retain_sync_logs           boolean NOT NULL DEFAULT true,
    sync_log_retention_days    integer NOT NULL DEFAULT 30 CHECK (sync_log_retention_days >= 0),
    snapshot_retention         integer NOT NULL DEFAULT 3 CHECK (snapshot_retention >= 1),
    retry_failed_records       boolean NOT NULL DEFAULT true,
    max_removal_fraction       real NOT NULL DEFAULT 0.5 CHECK (max_removal_fraction >= 0 AND max_removal_fraction <= 1),
    reset_pending              boolean NOT NULL DEFAULT false,
    created_at                 timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at                 timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CHECK (email_column IS NOT NULL OR user_id_column IS NOT NULL)
);

CREATE TABLE iterable_audience.sync_runs (
    run_id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sync_id              bigint NOT NULL REFERENCES iterable_audience.sync ON DELETE CASCADE,
    sync_name            text NOT NULL,
    trigger              text NOT NULL CHECK (trigger IN ('manual', 'schedule')),
    status               text NOT NULL CHECK (status IN ('running', 'succeeded', 'succeeded_with_failures', 'failed', 'blocked')),
    started_at           timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at          timestamptz,
    audience_rows        bigint,
    planned_subscribes   bigint,
    planned_unsubscribes bigint,
    subscribed           bigint NOT NULL DEFAULT 0,
    unsubscribed         bigint NOT NULL DEFAULT 0,
    failed               bigint NOT NULL DEFAULT 0,
    api_requests         bigint NOT NULL DEFAULT 0,
    error                text,
    rate_limited         bigint NOT NULL DEFAULT 0,
    forced               boolean NOT NULL DEFAULT false,
    snapshot_table       text,
    settled              boolean NOT NULL DEFAULT false  -- the run's batches are in a snapshot (or moot)
);
CREATE INDEX ON iterable_audience.sync_runs (sync_id, run_id);
CREATE INDEX ON iterable_audience.sync_runs (status) WHERE status = 'running';
COMMENT ON COLUMN iterable_audience.sync_runs.rate_limited IS 'Attempts Iterable answered with 429 (retried by the client)';
COMMENT ON COLUMN iterable_audience.sync_runs.snapshot_table IS 'Snapshot table holding the list as acknowledged after this run';

-- The batches of each run, one row per request (and per chunk of rows refused before sending).
-- A batch's row is committed durably *before* its request goes out, with every record it carries;
-- Iterable's answer is recorded into it afterwards (answered_at, per-record error codes). This is
-- the run's ledger: the run's snapshot table is built from the previous snapshot and these rows
-- (snapshot_tables.hpp), by the run when it ends or, after a crash, by the next run, so that a batch
-- whose answer was lost is known to be in doubt. It also holds the sync logs: the view
-- iterable_audience.sync_logs unnests it, one row per record. Arrays per batch instead of a row per
-- record make the log writes ~1000x fewer. No foreign key to sync_runs: its check would run against
-- the run's row, which every batch updates (its counters). drop_sync deletes a sync's batches.
CREATE TABLE iterable_audience.sync_batch (
    run_id          bigint NOT NULL,
    batch_no        integer NOT NULL,
    sync_id         bigint NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('sent', 'refused')),
    action          text NOT NULL CHECK (action IN ('subscribe', 'unsubscribe')),
    logged          boolean NOT NULL,   -- shown in sync_logs (the sync keeps its logs)
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    answered_at     timestamptz,        -- NULL: sent, Iterable's answer not recorded
    outcome_unknown boolean NOT NULL DEFAULT false,  -- the failed records may have been applied
    record_keys     text[] COMPRESSION lz4 NOT NULL,
    operations      text[] COMPRESSION lz4 NOT NULL,
    emails          text[] COMPRESSION lz4 NOT NULL,
    user_ids        text[] COMPRESSION lz4 NOT NULL,
    row_hashes      bigint[] COMPRESSION lz4 NOT NULL,
    notes           text[] COMPRESSION lz4,  -- what of a sent record was left out (invalid email ...)
    error_codes     text[] COMPRESSION lz4,  -- per record once answered; NULL = all succeeded
    error_messages  text[] COMPRESSION lz4,
    PRIMARY KEY (run_id, batch_no)
);
CREATE INDEX ON iterable_audience.sync_batch (sync_id, run_id);


-- Records whose last attempt failed, with the hash of the values that failed: with
-- retry_failed_records off they are sent again only when those values change.
CREATE TABLE iterable_audience.record_failure (
    sync_id     bigint NOT NULL REFERENCES iterable_audience.sync ON DELETE CASCADE,
    record_key  text NOT NULL,
    value_hash  bigint NOT NULL,
    error_code  text NOT NULL,
    retryable   boolean NOT NULL,
    run_id      bigint NOT NULL,
    PRIMARY KEY (sync_id, record_key)
);

-- Snapshot tables of each sync, newest last.
CREATE TABLE iterable_audience.snapshot (
    sync_id     bigint NOT NULL REFERENCES iterable_audience.sync ON DELETE CASCADE,
    run_id      bigint NOT NULL,
    table_name  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    row_count   bigint NOT NULL DEFAULT 0,  -- records on the list (the removal guard's denominator)
    filled      boolean NOT NULL DEFAULT false,  -- false: created empty while its run sends
    PRIMARY KEY (sync_id, run_id)
);

REVOKE ALL ON iterable_audience.sync, iterable_audience.sync_runs, iterable_audience.sync_batch,
              iterable_audience.record_failure, iterable_audience.snapshot FROM PUBLIC;
GRANT SELECT ON iterable_audience.sync_runs TO PUBLIC;

-- Each role sees its own syncs' runs and logs (those of roles it is a member of); superusers see all.
-- The policies read the sync ids through a view, which reads iterable_audience.sync with its owner's
-- rights: ordinary roles cannot read that table themselves.
CREATE VIEW iterable_audience.visible_sync_ids AS
    SELECT sync_id FROM iterable_audience.sync WHERE pg_catalog.pg_has_role(owner, 'USAGE');
GRANT SELECT ON iterable_audience.visible_sync_ids TO PUBLIC;
ALTER TABLE iterable_audience.sync_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_runs ON iterable_audience.sync_runs
    USING (sync_id IN (SELECT v.sync_id FROM iterable_audience.visible_sync_ids v));

-- sync_logs is a view that filters the same way (security_barrier: no leaky function sees other rows).
CREATE VIEW iterable_audience.sync_logs WITH (security_barrier) AS
    SELECT b.run_id, b.sync_id, b.answered_at AS logged_at, u.record_key, u.operation, b.action, u.email,
           u.user_id, CASE WHEN u.error_code IS NULL THEN 'succeeded' ELSE 'failed' END AS status,
           u.error_code, coalesce(u.error_message, u.note) AS error_message
      FROM iterable_audience.sync_batch b
     CROSS JOIN LATERAL unnest(b.record_keys, b.operations, b.emails, b.user_ids, b.notes,
                                b.error_codes, b.error_messages)
           AS u(record_key, operation, email, user_id, note, error_code, error_message)
     WHERE b.logged AND b.answered_at IS NOT NULL
       AND b.sync_id IN (SELECT v.sync_id FROM iterable_audience.visible_sync_ids v);
COMMENT ON VIEW iterable_audience.sync_logs IS 'One row per record sent or refused in a run';
GRANT SELECT ON iterable_audience.sync_logs TO PUBLIC;

CREATE VIEW iterable_audience.syncs WITH (security_barrier) AS
    SELECT s.sync_id, s.sync_name, a.account_name, s.source, s.list_id, s.email_column, s.user_id_column,
           s.data_fields, s.schedule, s.paused, s.next_run_at,
           s.owner::regrole AS owner, s.update_existing_users_only, s.campaign_id, s.channel_unsubscribe,
           s.retain_sync_logs, s.sync_log_retention_days, s.snapshot_retention, s.retry_failed_records,
           s.max_removal_fraction, s.created_at, s.updated_at,
           last.status AS last_run_status, last.finished_at AS last_run_finished_at,
           (SELECT n.table_name FROM iterable_audience.snapshot n
             WHERE n.sync_id = s.sync_id AND n.filled ORDER BY n.run_id DESC LIMIT 1) AS snapshot_table
      FROM iterable_audience.sync s
      JOIN iterable_audience.account a USING (account_id)
      LEFT JOIN LATERAL (SELECT r.status, r.finished_at FROM iterable_audience.sync_runs r
                          WHERE r.sync_id = s.sync_id ORDER BY r.run_id DESC LIMIT 1) last ON true
     WHERE pg_catalog.pg_has_role(s.owner, 'USAGE');
GRANT SELECT ON iterable_audience.syncs TO PUBLIC;

CREATE FUNCTION iterable_audience.create_sync(
    sync_name     text,
    account_name  text,
    source        text,
    list_id       bigint  DEFAULT NULL,
    new_list_name text    DEFAULT NULL,
    new_list_description text DEFAULT NULL,
    email_column   text   DEFAULT NULL,
    user_id_column text   DEFAULT NULL,
    data_fields    jsonb  DEFAULT NULL,
    update_existing_users_only boolean DEFAULT false,
    campaign_id         bigint  DEFAULT NULL,
    channel_unsubscribe boolean DEFAULT false,
    schedule      text    DEFAULT 'manual',
    retain_sync_logs          boolean DEFAULT true,
    sync_log_retention_days   integer DEFAULT 30,
    snapshot_retention        integer DEFAULT 3,
    retry_failed_records      boolean DEFAULT true,
    max_removal_fraction      real    DEFAULT 0.5)
RETURNS bigint AS 'MODULE_PATHNAME', 'ia_create_sync' LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION iterable_audience.alter_sync(
    sync_name     text,
    account_name  text    DEFAULT NULL,
    source        text    DEFAULT NULL,
    list_id       bigint  DEFAULT NULL,
    new_list_name text    DEFAULT NULL,
    new_list_description text DEFAULT NULL,
    email_column   text   DEFAULT NULL,
    user_id_column text   DEFAULT NULL,
    data_fields    jsonb  DEFAULT NULL,
    update_existing_users_only boolean DEFAULT NULL,
    campaign_id         bigint  DEFAULT NULL,
    channel_unsubscribe boolean DEFAULT NULL,
    schedule      text    DEFAULT NULL,
    retain_sync_logs          boolean DEFAULT NULL,
    sync_log_retention_days   integer DEFAULT NULL,
    snapshot_retention        integer DEFAULT NULL,
    retry_failed_records      boolean DEFAULT NULL,
    max_removal_fraction      real    DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'ia_alter_sync' LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION iterable_audience.pause_sync(sync_name text)
RETURNS void AS 'MODULE_PATHNAME', 'ia_pause_sync' LANGUAGE C CALLED ON NULL INPUT VOLATILE;
CREATE FUNCTION iterable_audience.resume_sync(sync_name text)
RETURNS void AS 'MODULE_PATHNAME', 'ia_resume_sync' LANGUAGE C CALLED ON NULL INPUT VOLATILE;
CREATE FUNCTION iterable_audience.drop_sync(sync_name text)
RETURNS void AS 'MODULE_PATHNAME', 'ia_drop_sync' LANGUAGE C CALLED ON NULL INPUT VOLATILE;
CREATE FUNCTION iterable_audience.reset_sync(sync_name text)
RETURNS void AS 'MODULE_PATHNAME', 'ia_reset_sync' LANGUAGE C CALLED ON NULL INPUT VOLATILE;

------------------------------------------------------------------------------------------------
-- Running
------------------------------------------------------------------------------------------------
CREATE FUNCTION iterable_audience.run_sync(sync_name text, force boolean DEFAULT false)
RETURNS iterable_audience.sync_runs AS 'MODULE_PATHNAME', 'ia_run_sync' LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION iterable_audience.preview_sync(sync_name text)
RETURNS TABLE(operation text, action text, record_key text, email text, user_id text,
              data_fields jsonb, valid boolean, error_code text, error_message text)
AS 'MODULE_PATHNAME', 'ia_preview_sync' LANGUAGE C CALLED ON NULL INPUT VOLATILE;

-- Identifier rules of the contract, usable from SQL (the plan query uses them too).
CREATE FUNCTION iterable_audience.normalize_email(email text) RETURNS text
AS 'MODULE_PATHNAME', 'ia_normalize_email' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION iterable_audience.is_valid_user_id(user_id text) RETURNS boolean
AS 'MODULE_PATHNAME', 'ia_is_valid_user_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Internal to the plan query (src/plan_functions.cpp), one call per audience row.
-- values_hash: the hash of the values a record sends (NULLs as empty strings), kept in snapshots.
CREATE FUNCTION iterable_audience.values_hash(email text, user_id text, data_fields jsonb) RETURNS bigint
AS 'MODULE_PATHNAME', 'ia_values_hash' LANGUAGE C IMMUTABLE PARALLEL SAFE;
-- key_seen_before: true when the key may have come earlier in the same scan (a Bloom filter kept for
-- one statement: a fixed 16 MB, or less when expected_keys is under 256k; no false negatives; false
-- positives 0.04% of 10M keys, 1% of 20M). Volatile: it has state.
CREATE FUNCTION iterable_audience.key_seen_before(record_key text, expected_keys bigint DEFAULT 0) RETURNS boolean
AS 'MODULE_PATHNAME', 'ia_key_seen_before' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

------------------------------------------------------------------------------------------------
-- Scheduler (docs/scheduler.md): a background worker when the library is in shared_preload_libraries
------------------------------------------------------------------------------------------------
CREATE FUNCTION iterable_audience.scheduler_status(
    OUT pid                  integer,
    OUT database_name        text,
    OUT serves_this_database boolean,
    OUT state                text,
    OUT started_at           timestamptz,
    OUT last_wake_at         timestamptz,
    OUT next_wake_at         timestamptz,
    OUT running_runs         integer,
    OUT runs_started         bigint,
    OUT runs_skipped         bigint,
    OUT max_concurrent_syncs integer)
RETURNS record AS 'MODULE_PATHNAME', 'ia_scheduler_status' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iterable_audience.scheduler_status() IS
    'The scheduler: its pid, the database it serves, what it is doing, when it woke and wakes next';

-- Looks for due syncs when the calling transaction commits (e.g. after setting next_run_at by hand).
CREATE FUNCTION iterable_audience.wake_scheduler()
RETURNS boolean AS 'MODULE_PATHNAME', 'ia_wake_scheduler' LANGUAGE C VOLATILE;
REVOKE EXECUTE ON FUNCTION iterable_audience.wake_scheduler() FROM PUBLIC;

------------------------------------------------------------------------------------------------
-- Shared request pacing (docs/architecture.md): one AIMD controller per (database, account) in shared
-- memory, driven by every run of that Iterable project. Empty when the library is not preloaded.
------------------------------------------------------------------------------------------------
CREATE FUNCTION iterable_audience.rate_controllers()
RETURNS TABLE(database_oid     oid,
              account_id       bigint,
              rate             double precision,
              accepted_rate    double precision,
              wait_seconds     double precision,
              requests         bigint,
              responses        bigint,
              rate_limited     bigint,
              last_used        timestamptz)
AS 'MODULE_PATHNAME', 'ia_rate_controllers' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iterable_audience.rate_controllers() IS
    'Shared pacing per Iterable account: allowed requests/s (Infinity until the first 429), accepted requests/s over the last 2 s, seconds until the next request may start, requests started, attempts answered (retries included), of them 429, last use';
REVOKE EXECUTE ON FUNCTION iterable_audience.rate_controllers() FROM PUBLIC;
