-- iterable_audience 0.1.0 -> 0.2.0. A new installation of 0.2.0 runs the 0.1.0 install script and
-- then this one, so every installation, upgraded or new, has the same objects.
-- Released scripts are never edited: a later change is a new version with its own upgrade script.
\echo Use "ALTER EXTENSION iterable_audience UPDATE TO '0.2.0'" to load this file. \quit

------------------------------------------------------------------------------------------------
-- Sync kinds and user syncs (issue 14)
------------------------------------------------------------------------------------------------

-- Every sync has a kind (src/engine/sync_kind.hpp): 'list' (create_sync's mirror), 'users' (profile
-- fields follow a table, create_user_sync) or 'events'. Only list syncs have a list. No new table:
-- a user sync keeps its state in the same sync, sync_runs, sync_batch, record_failure and snapshot
-- tables as a list sync (already marked for pg_dump, issue 17), so nothing new needs marking here.
ALTER TABLE iterable_audience.sync
    ADD COLUMN kind text NOT NULL DEFAULT 'list' CHECK (kind IN ('list', 'users', 'events')),
    ADD COLUMN merge_nested_objects boolean NOT NULL DEFAULT false,
    ADD COLUMN prefer_user_id boolean NOT NULL DEFAULT false,
    ALTER COLUMN list_id DROP NOT NULL,
    ADD CONSTRAINT sync_list_id_of_list_kind CHECK ((kind = 'list') = (list_id IS NOT NULL));

ALTER TABLE iterable_audience.sync_runs
    ADD COLUMN kind text NOT NULL DEFAULT 'list' CHECK (kind IN ('list', 'users', 'events')),
    ADD COLUMN planned_updates bigint,
    ADD COLUMN updated bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN iterable_audience.sync_runs.updated IS 'User profiles Iterable acknowledged (user syncs)';

-- 'update_user': a user sync's batch (POST /api/users/bulkUpdate). 'forget': records that left a
-- user sync's source, recorded without a request (nothing is sent for them) so that the snapshot
-- forgets them and sends them again if they come back; never shown in sync_logs.
ALTER TABLE iterable_audience.sync_batch DROP CONSTRAINT sync_batch_action_check;
ALTER TABLE iterable_audience.sync_batch ADD CONSTRAINT sync_batch_action_check
    CHECK (action IN ('subscribe', 'unsubscribe', 'update_user', 'forget'));

CREATE OR REPLACE VIEW iterable_audience.syncs WITH (security_barrier) AS
    SELECT s.sync_id, s.sync_name, a.account_name, s.source, s.list_id, s.email_column, s.user_id_column,
           s.data_fields, s.schedule, s.paused, s.next_run_at,
           s.owner::regrole AS owner, s.update_existing_users_only, s.campaign_id, s.channel_unsubscribe,
           s.retain_sync_logs, s.sync_log_retention_days, s.snapshot_retention, s.retry_failed_records,
           s.max_removal_fraction, s.created_at, s.updated_at,
           last.status AS last_run_status, last.finished_at AS last_run_finished_at,
           (SELECT n.table_name FROM iterable_audience.snapshot n
             WHERE n.sync_id = s.sync_id AND n.filled ORDER BY n.run_id DESC LIMIT 1) AS snapshot_table,
           s.kind, s.merge_nested_objects, s.prefer_user_id
      FROM iterable_audience.sync s
      JOIN iterable_audience.account a USING (account_id)
      LEFT JOIN LATERAL (SELECT r.status, r.finished_at FROM iterable_audience.sync_runs r
                          WHERE r.sync_id = s.sync_id ORDER BY r.run_id DESC LIMIT 1) last ON true
     WHERE pg_catalog.pg_has_role(s.owner, 'USAGE');

-- alter_sync gains the user syncs' two flags (the other arguments apply to every kind but those
-- named for lists: list_id, new_list_name, update_existing_users_only, campaign_id,
-- channel_unsubscribe, max_removal_fraction).
DROP FUNCTION iterable_audience.alter_sync(text, text, text, bigint, text, text, text, text, jsonb, boolean, bigint,
                                           boolean, text, boolean, integer, integer, boolean, real);
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
    max_removal_fraction      real    DEFAULT NULL,
    merge_nested_objects      boolean DEFAULT NULL,
    prefer_user_id            boolean DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'ia_alter_sync' LANGUAGE C CALLED ON NULL INPUT VOLATILE;

-- run_sync returns a sync_runs row: its type gained columns, the function is the same.
CREATE FUNCTION iterable_audience.create_user_sync(
    sync_name      text,
    account_name   text,
    source         text,
    email_column   text    DEFAULT NULL,
    user_id_column text    DEFAULT NULL,
    data_fields    jsonb   DEFAULT NULL,
    merge_nested_objects boolean DEFAULT false,
    prefer_user_id boolean DEFAULT false,
    schedule       text    DEFAULT 'manual',
    retain_sync_logs        boolean DEFAULT true,
    sync_log_retention_days integer DEFAULT 30,
    snapshot_retention      integer DEFAULT 3,
    retry_failed_records    boolean DEFAULT true)
RETURNS bigint AS 'MODULE_PATHNAME', 'ia_create_user_sync' LANGUAGE C CALLED ON NULL INPUT VOLATILE;




------------------------------------------------------------------------------------------------
-- Secrets: API keys redacted by value from logs already written (issue 16)
------------------------------------------------------------------------------------------------

-- Version 0.1.0 redacted the key only after a header name ("(Api-Key,KEY)"), so an Iterable answer
-- that quoted the key bare left it in sync_batch.error_messages (shown by sync_logs) and in
-- sync_runs.error. Every account's current key is replaced by the marker the code uses,
-- "[redacted]", in any letter case, percent-encoded (also partly, also as %25XX) and JSON-escaped
-- (\u00XX, \u0025XX, \" \\ \/): a pattern per key built here, one alternative per character, as
-- src/core/redaction.cpp matches it (of its twice-encoded forms, only %25XX and \u0025XX). A key changed since with
-- alter_account() is no longer known and cannot be looked for. Keys are printable ASCII
-- (create_account() refuses anything else). lz4-compressed arrays are transparent here.
DO $scrub_keys$
DECLARE
    bs constant text := chr(92);  -- a backslash, whatever standard_conforming_strings says
    k  record;
    re text;
    c  text;
    hx text;
    i  integer;
BEGIN
    FOR k IN SELECT s.api_key FROM iterable_audience.account_secret s WHERE s.api_key <> '' LOOP
        re := '';
        FOR i IN 1 .. length(k.api_key) LOOP
            c := substr(k.api_key, i, 1);
            -- Both letter cases' codes: the pattern is applied case-insensitively ('i').
            hx := '(?:' || lpad(to_hex(ascii(lower(c))), 2, '0') || '|' || lpad(to_hex(ascii(upper(c))), 2, '0') || ')';
            re := re || '(?:'
                || CASE WHEN c ~ '^[A-Za-z0-9]$' THEN c ELSE bs || c END         -- the character
                || '|%(?:25)?' || hx                                               -- %XX, %25XX
                || '|' || bs || bs || 'u00(?:25)?' || hx                           -- \u00XX, \u0025XX
                || CASE WHEN c IN ('"', '/') OR c = bs THEN '|' || bs || bs || bs || c ELSE '' END  -- \" \/ \\
                || ')';
        END LOOP;
        UPDATE iterable_audience.sync_runs r
           SET error = regexp_replace(r.error, re, '[redacted]', 'gi')
         WHERE r.error ~* re;
        UPDATE iterable_audience.sync_batch b
           SET error_messages = ARRAY(SELECT regexp_replace(m.msg, re, '[redacted]', 'gi')
                                        FROM unnest(b.error_messages) WITH ORDINALITY AS m(msg, n)
                                       ORDER BY m.n)
         WHERE b.error_messages IS NOT NULL
           AND EXISTS (SELECT 1 FROM unnest(b.error_messages) AS m(msg) WHERE m.msg ~* re);
    END LOOP;
END
$scrub_keys$;



------------------------------------------------------------------------------------------------
-- Backups: user state marked for pg_dump (issue 17)
------------------------------------------------------------------------------------------------
-- pg_dump leaves out the rows of an extension's tables unless they are marked here (README,
-- "Backups"). The install scripts insert no rows, so every row is user state: no filter. The
-- identity sequences come along too, so ids go on from where they were after a restore.
SELECT pg_catalog.pg_extension_config_dump('iterable_audience.account', '');
SELECT pg_catalog.pg_extension_config_dump('iterable_audience.account_secret', '');
SELECT pg_catalog.pg_extension_config_dump('iterable_audience.account_usage', '');
SELECT pg_catalog.pg_extension_config_dump('iterable_audience.sync', '');
SELECT pg_catalog.pg_extension_config_dump('iterable_audience.sync_runs', '');
SELECT pg_catalog.pg_extension_config_dump('iterable_audience.sync_batch', '');
SELECT pg_catalog.pg_extension_config_dump('iterable_audience.record_failure', '');
SELECT pg_catalog.pg_extension_config_dump('iterable_audience.snapshot', '');
SELECT pg_catalog.pg_extension_config_dump('iterable_audience.account_account_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('iterable_audience.sync_sync_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('iterable_audience.sync_runs_run_id_seq', '');

-- Owners and usage grantees are kept by role OID, which another cluster does not share. Each row
-- also keeps the role as a regrole: COPY writes a regrole as the role's name and reads it back as the
-- OID of the role of that name where it is restored (an error if there is none). When a row arrives
-- with the two disagreeing, it is a restore into another cluster: the name wins. The extension's own
-- inserts and updates leave the regrole to the trigger. (A regrole tracks renames: it is an OID.)
ALTER TABLE iterable_audience.account ADD COLUMN owner_role regrole;
ALTER TABLE iterable_audience.sync ADD COLUMN owner_role regrole;
ALTER TABLE iterable_audience.account_usage ADD COLUMN grantee_role regrole;
UPDATE iterable_audience.account SET owner_role = owner::regrole;
UPDATE iterable_audience.sync SET owner_role = owner::regrole;
UPDATE iterable_audience.account_usage SET grantee_role = grantee::regrole;

CREATE FUNCTION iterable_audience._owner_by_name() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.owner_role IS NOT NULL AND NEW.owner_role::oid <> NEW.owner THEN
        NEW.owner := NEW.owner_role::oid;
    ELSE
        NEW.owner_role := NEW.owner::regrole;
    END IF;
    RETURN NEW;
END
$$;
CREATE FUNCTION iterable_audience._grantee_by_name() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.grantee_role IS NOT NULL AND NEW.grantee_role::oid <> NEW.grantee THEN
        NEW.grantee := NEW.grantee_role::oid;
    ELSE
        NEW.grantee_role := NEW.grantee::regrole;
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION iterable_audience._owner_by_name(), iterable_audience._grantee_by_name() FROM PUBLIC;
CREATE TRIGGER owner_by_name BEFORE INSERT OR UPDATE OF owner, owner_role ON iterable_audience.account
    FOR EACH ROW EXECUTE FUNCTION iterable_audience._owner_by_name();
CREATE TRIGGER owner_by_name BEFORE INSERT OR UPDATE OF owner, owner_role ON iterable_audience.sync
    FOR EACH ROW EXECUTE FUNCTION iterable_audience._owner_by_name();
CREATE TRIGGER grantee_by_name BEFORE INSERT OR UPDATE OF grantee, grantee_role ON iterable_audience.account_usage
    FOR EACH ROW EXECUTE FUNCTION iterable_audience._grantee_by_name();

-- Snapshot tables (iterable_audience_snapshots.*) are made at run time. pg_dump never dumps the
-- definition of an extension member (CREATE EXTENSION is expected to make it), so they are not
-- members: they are tied to the extension by an auto-extension dependency instead (DROP EXTENSION
-- drops them; src/engine/snapshot_tables.hpp), and pg_dump dumps them like any table. The tie is not
-- in a dump: restoring the rows of iterable_audience.snapshot, after the tables (pre-data), ties
-- them again.
CREATE FUNCTION iterable_audience._snapshot_registered() RETURNS trigger
AS 'MODULE_PATHNAME', 'ia_snapshot_registered' LANGUAGE C;
REVOKE EXECUTE ON FUNCTION iterable_audience._snapshot_registered() FROM PUBLIC;
CREATE TRIGGER snapshot_table_tied AFTER INSERT ON iterable_audience.snapshot
    FOR EACH ROW EXECUTE FUNCTION iterable_audience._snapshot_registered();

CREATE FUNCTION iterable_audience._tie_snapshot_tables() RETURNS integer
AS 'MODULE_PATHNAME', 'ia_tie_snapshot_tables' LANGUAGE C STRICT VOLATILE;
REVOKE EXECUTE ON FUNCTION iterable_audience._tie_snapshot_tables() FROM PUBLIC;

-- An installation made from 0.1.0 has its snapshot tables as members: release and tie them.
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT c.oid::regclass
               FROM pg_catalog.pg_depend d
               JOIN pg_catalog.pg_class c ON c.oid = d.objid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype = 'e'
                AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'iterable_audience')
                AND n.nspname = 'iterable_audience_snapshots'
    LOOP
        EXECUTE pg_catalog.format('ALTER EXTENSION iterable_audience DROP TABLE %s', t);
    END LOOP;
END
$$;
SELECT iterable_audience._tie_snapshot_tables();



------------------------------------------------------------------------------------------------
-- Operability: health, progress, alerts, drift (issue 19)
------------------------------------------------------------------------------------------------

-- health, progress, alerts

-- Live progress, on each run's row: the phase it is in (after it ended: the phase it ended in) and
-- the records it will send or refuse. sync_runs.rate_limited (0.1.0) already counts 429s per answer.
ALTER TABLE iterable_audience.sync_runs ADD COLUMN phase text;
ALTER TABLE iterable_audience.sync_runs ALTER COLUMN phase SET DEFAULT 'starting';
ALTER TABLE iterable_audience.sync_runs ADD COLUMN records_planned bigint;
COMMENT ON COLUMN iterable_audience.sync_runs.phase IS
    'starting | planning | preflight | sending | finishing: the phase the run is in; once it ended, the phase it ended in';
COMMENT ON COLUMN iterable_audience.sync_runs.records_planned IS
    'Records the run sends or refuses, known once its plan is made';

-- The n-th due time of a schedule strictly after a given instant (UTC); NULL for 'manual'.
CREATE FUNCTION iterable_audience.next_due_time(schedule text, after timestamptz DEFAULT pg_catalog.now(),
                                                n integer DEFAULT 1)
RETURNS timestamptz AS 'MODULE_PATHNAME', 'ia_next_due_time' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iterable_audience.next_due_time(text, timestamptz, integer) IS
    'The n-th due time of a schedule strictly after an instant (UTC); NULL for manual';

-- One row per sync, under the row-level rules of syncs (a role sees the syncs of roles it is a
-- member of; superusers all). "Success" is a run that ended 'succeeded' or 'succeeded_with_failures'.
-- overdue: the sync is scheduled (not 'manual', not paused) and the second due time of its schedule
-- after its last success (or after its last change by create/alter/resume/reset_sync, if later) has
-- passed: two due runs in a row came and went without a success. Exact for intervals and cron alike.
CREATE VIEW iterable_audience.sync_health WITH (security_barrier) AS
    SELECT s.sync_name,
           s.kind,
           s.paused,
           last.status AS last_run_status,
           last.finished_at AS last_run_finished_at,
           ok.finished_at AS last_success_at,
           (SELECT pg_catalog.count(*) FROM iterable_audience.sync_runs f
             WHERE f.sync_id = s.sync_id AND f.status IN ('failed', 'blocked')
               AND f.run_id > coalesce(ok.run_id, 0))::integer AS consecutive_failures,
           last.failed AS failed_records_last_run,
           CASE WHEN s.paused OR s.schedule IN ('manual', 'continuous') THEN false
                ELSE coalesce(pg_catalog.now() >= iterable_audience.next_due_time(
                         s.schedule, GREATEST(ok.finished_at, s.updated_at), 2), false)
           END AS overdue
      FROM iterable_audience.sync s
      LEFT JOIN LATERAL (SELECT r.status, r.finished_at, r.failed FROM iterable_audience.sync_runs r
                          WHERE r.sync_id = s.sync_id AND r.status <> 'running'
                          ORDER BY r.run_id DESC LIMIT 1) last ON true
      LEFT JOIN LATERAL (SELECT r.run_id, r.finished_at FROM iterable_audience.sync_runs r
                          WHERE r.sync_id = s.sync_id AND r.status IN ('succeeded', 'succeeded_with_failures')
                          ORDER BY r.run_id DESC LIMIT 1) ok ON true
     WHERE pg_catalog.pg_has_role(s.owner, 'USAGE');
COMMENT ON VIEW iterable_audience.sync_health IS
    'Per sync: the last finished run, the last success, failed or blocked runs since it, and whether a scheduled sync is overdue';
GRANT SELECT ON iterable_audience.sync_health TO PUBLIC;

-- One row per run that is running now: its row says 'running' and its worker holds the sync's run
-- lock (src/engine/sync_lock.hpp: advisory lock (6749, sync_id % 2147483647)), so a run left
-- 'running' by a crash, not yet marked failed, is not shown. Updated as Iterable answers batches.
CREATE VIEW iterable_audience.sync_progress WITH (security_barrier) AS
    SELECT r.run_id, r.sync_name,
           r.kind,
           r.phase, r.records_planned,
           r.subscribed + r.unsubscribed + r.updated + r.failed AS records_done,
           r.api_requests, r.rate_limited, r.started_at
      FROM iterable_audience.sync_runs r
     WHERE r.status = 'running'
       AND r.sync_id IN (SELECT v.sync_id FROM iterable_audience.visible_sync_ids v)
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                    WHERE l.locktype = 'advisory' AND l.classid = 6749 AND l.objsubid = 2 AND l.granted
                      AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                                         WHERE d.datname = pg_catalog.current_database())
                      AND l.objid::bigint = r.sync_id % 2147483647);
COMMENT ON VIEW iterable_audience.sync_progress IS
    'Runs going now: phase, records planned and done, requests, 429s; updated as Iterable answers';
GRANT SELECT ON iterable_audience.sync_progress TO PUBLIC;

-- Alerts: NOTIFY iterable_audience with {"sync_name", "run_id", "kind", "status", "failed", "error"}
-- in the transaction that records a run's final status, whatever records it (the run itself, an
-- interrupt, the next run or the scheduler settling a run left 'running' by a crash, a scheduled
-- run whose worker could not start). "failed" is the run's count of failed records; "error" its
-- stored error (API keys are never in it), cut on a character boundary, with "..." appended, so
-- that the payload stays under PostgreSQL's 8000-byte limit.
CREATE FUNCTION iterable_audience._notify_run_finished() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    limit_bytes constant integer := 7999;  -- pg_notify refuses a payload of 8000 bytes or more
    payload text;
    base    integer;
    lo      integer;
    hi      integer;
    mid     integer;
BEGIN
    payload := json_build_object('sync_name', NEW.sync_name, 'run_id', NEW.run_id,
                                 'kind', NEW.kind,
                                 'status', NEW.status, 'failed', NEW.failed, 'error', NEW.error)::text;
    IF octet_length(payload) > limit_bytes THEN
        -- The longest prefix of the error (in characters) that fits with "..." appended.
        base := octet_length(json_build_object('sync_name', NEW.sync_name, 'run_id', NEW.run_id, 'kind', NEW.kind,
                                               'status', NEW.status, 'failed', NEW.failed, 'error', '...')::text);
        lo := 0;
        hi := least(length(NEW.error), limit_bytes);
        WHILE lo < hi LOOP
            mid := (lo + hi + 1) / 2;
            IF base + octet_length(to_json(left(NEW.error, mid))::text) - 2 <= limit_bytes THEN
                lo := mid;
            ELSE
                hi := mid - 1;
            END IF;
        END LOOP;
        payload := json_build_object('sync_name', NEW.sync_name, 'run_id', NEW.run_id, 'kind', NEW.kind,
                                     'status', NEW.status, 'failed', NEW.failed,
                                     'error', left(NEW.error, lo) || '...')::text;
    END IF;
    PERFORM pg_notify('iterable_audience', payload);
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    -- An alert must never stop the run's final status from being recorded.
    RAISE WARNING 'iterable_audience: no NOTIFY for run % of sync "%": %', NEW.run_id, NEW.sync_name, SQLERRM;
    RETURN NULL;
END
$fn$;
REVOKE EXECUTE ON FUNCTION iterable_audience._notify_run_finished() FROM PUBLIC;
CREATE TRIGGER notify_run_finished AFTER UPDATE OF status ON iterable_audience.sync_runs
    FOR EACH ROW WHEN (OLD.status = 'running' AND NEW.status <> 'running')
    EXECUTE FUNCTION iterable_audience._notify_run_finished();
-- A run recorded as finished when inserted (a scheduled run whose worker could not start); not rows
-- of an earlier time, such as those pg_restore loads.
CREATE TRIGGER notify_run_recorded_finished AFTER INSERT ON iterable_audience.sync_runs
    FOR EACH ROW WHEN (NEW.status <> 'running' AND NEW.finished_at >= pg_catalog.transaction_timestamp())
    EXECUTE FUNCTION iterable_audience._notify_run_finished();


-- drift check
-- check_list: the list's members as Iterable has them (GET /api/lists/getUsers, 5 requests a minute
-- per project, paced across sessions) compared with the sync's latest snapshot.
CREATE FUNCTION iterable_audience.check_list(sync_name text)
RETURNS TABLE(record_key text, email text, user_id text, problem text)
AS 'MODULE_PATHNAME', 'ia_check_list' LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION iterable_audience.check_list(text) IS
    'Members the sync''s latest snapshot has and Iterable''s list lacks (missing_in_iterable), and members of the list the snapshot does not have (unexpected_in_iterable)';

-- repair_list: the same read-back; the missing records are marked in doubt in the latest snapshot so
-- that the next run subscribes them again; with unsubscribe_unexpected, the unexpected members are
-- added in doubt, so that the next run unsubscribes those the audience does not have.
CREATE FUNCTION iterable_audience.repair_list(sync_name text, unsubscribe_unexpected boolean DEFAULT false)
RETURNS TABLE(record_key text, email text, user_id text, problem text, repair text)
AS 'MODULE_PATHNAME', 'ia_repair_list' LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION iterable_audience.repair_list(text, boolean) IS
    'Makes the next run resubscribe the members missing in Iterable and, with unsubscribe_unexpected => true, unsubscribe the unexpected ones that are not in the audience';

------------------------------------------------------------------------------------------------
-- Pacing and continuous syncs (issue 18)
------------------------------------------------------------------------------------------------

-- Rates the pacing learned per Iterable account and endpoint (docs/architecture.md, "Shared pacing"):
-- written when a run's pacing ends, read when a pacing slot starts, so the next run of any sync of
-- the project starts at it instead of finding the limit again. Only the run workers (the extension
-- owner) write it; not readable by PUBLIC (iterable_audience.rate_controllers() shows the live state).
CREATE TABLE iterable_audience.learned_rate (
    account_id bigint NOT NULL REFERENCES iterable_audience.account ON DELETE CASCADE,
    endpoint   text NOT NULL CHECK (endpoint LIKE '/api/%'),
    rate       double precision NOT NULL CHECK (rate > 0 AND rate < 'Infinity'),
    burst      double precision NOT NULL DEFAULT 1 CHECK (burst >= 1 AND burst < 'Infinity'),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, endpoint)
);
COMMENT ON TABLE iterable_audience.learned_rate IS
    'Requests/s (and requests at once) the pacing measured Iterable''s bucket to accept, per account and endpoint; the next run starts at it';
REVOKE ALL ON iterable_audience.learned_rate FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('iterable_audience.learned_rate', '');

-- The pacing slots are per (database, account, endpoint) now, paced from the first request: three
-- more columns, and the rate is finite from the start.
DROP FUNCTION iterable_audience.rate_controllers();
CREATE FUNCTION iterable_audience.rate_controllers()
RETURNS TABLE(database_oid     oid,
              account_id       bigint,
              rate             double precision,
              accepted_rate    double precision,
              wait_seconds     double precision,
              requests         bigint,
              responses        bigint,
              rate_limited     bigint,
              last_used        timestamptz,
              endpoint         text,
              estimate         double precision,
              burst            double precision)
AS 'MODULE_PATHNAME', 'ia_rate_controllers' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iterable_audience.rate_controllers() IS
    'Shared pacing per Iterable account and endpoint: allowed requests/s, accepted requests/s over the last 2 s, seconds until the next request may start, requests started, attempts answered (retries included), of them 429, last use, endpoint, the measured drain rate of Iterable''s bucket (NULL until measured), requests let go at once';
REVOKE EXECUTE ON FUNCTION iterable_audience.rate_controllers() FROM PUBLIC;


-- idle runs and continuous syncs

-- Change log of the tables that syncs read (docs: README "Idle runs and continuous syncs"): a
-- statement-level trigger on each such table adds (table, writing transaction) once per transaction.
-- A run records the MVCC snapshot it read its source with; the source is unchanged since iff no row
-- of its tables names a transaction that snapshot does not see (committed since, or still open then:
-- a late commit is caught, whatever order transaction ids were assigned in).
-- Not marked for pg_dump on purpose: its oids and transaction ids mean nothing in another cluster
-- (a restored database starts with full runs).
CREATE TABLE iterable_audience.source_change (
    relid oid NOT NULL,
    xact  xid8 NOT NULL,
    PRIMARY KEY (relid, xact)
);
REVOKE ALL ON iterable_audience.source_change FROM PUBLIC;

-- Per sync: what its last run that read the source read. Not dumped either (oids, transaction ids).
-- read_*: the last run that read the source (converged: it sent everything and nothing is in doubt
-- or to retry, so an unchanged source means an empty plan). pending_*: a run reading it now (kept
-- apart so that pruning the change log keeps what that run will need).
CREATE TABLE iterable_audience.source_watch (
    sync_id           bigint PRIMARY KEY REFERENCES iterable_audience.sync ON DELETE CASCADE,
    sync_updated_at   timestamptz,
    read_run_id       bigint,
    read_tracked      boolean,
    read_relids       oid[],
    read_fingerprint  text,
    read_snapshot     pg_snapshot,
    read_snapshot_table text,
    converged         boolean NOT NULL DEFAULT false,
    pending_run_id    bigint,
    pending_tracked   boolean,
    pending_relids    oid[],
    pending_fingerprint text,
    pending_snapshot  pg_snapshot
);
REVOKE ALL ON iterable_audience.source_watch FROM PUBLIC;

-- Whether a run read its source: false for an idle run, which knew it unchanged and did nothing.
ALTER TABLE iterable_audience.sync_runs ADD COLUMN source_read boolean;
COMMENT ON COLUMN iterable_audience.sync_runs.source_read IS
    'true: the run read its source; false: an idle run (the source had not changed since the last run that sent all of it); NULL: not known yet, or a run that ended before reading';

-- The trigger function: as the extension's owner (the writers of the source need no right on the
-- log), one row per (table, transaction).
CREATE FUNCTION iterable_audience.note_source_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO iterable_audience.source_change (relid, xact) VALUES (TG_RELID, pg_catalog.pg_current_xact_id())
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION iterable_audience.note_source_change() FROM PUBLIC;

-- Whether a view's stored query gives the same rows whenever its tables hold the same rows: every
-- function it calls (operators through their functions) is IMMUTABLE, and no CURRENT_USER-like
-- value, sequence, TABLESAMPLE or row comparison (whose operators are not checked here) is in it.
CREATE FUNCTION iterable_audience.query_tree_is_deterministic(tree text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT tree !~ '\{(SQLVALUEFUNCTION|NEXTVALUEEXPR|ROWCOMPAREEXPR|TABLESAMPLECLAUSE|CURRENTOFEXPR|PARAM) '
       AND NOT EXISTS (
           SELECT 1
             FROM regexp_matches(tree, ':(funcid|opfuncid|aggfnoid|winfnoid|opno|sortop|eqop) ([0-9]+)', 'g') m
             LEFT JOIN pg_operator o ON m[1] IN ('opno', 'sortop', 'eqop') AND o.oid = m[2]::oid
             LEFT JOIN pg_proc p ON p.oid = CASE WHEN m[1] IN ('opno', 'sortop', 'eqop') THEN o.oprcode::oid
                                                 ELSE m[2]::oid END
            WHERE m[2] <> '0' AND coalesce(p.provolatile, 'v') <> 'i')
$$;

-- The relations a source reads (itself, the tables under its views, the partitions and inheritance
-- children of those), sorted; NULL when changes to them cannot be tracked exactly: a foreign table,
-- a materialized view, a table with row-level security, a table logical replication writes, a view
-- whose query is not deterministic (now(), random(), a STABLE function that may read other tables).
CREATE FUNCTION iterable_audience.source_relations(root oid) RETURNS oid[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    todo oid[] := ARRAY[root];
    seen oid[] := '{}';
    r oid;
    kind "char";
    rls boolean;
    tree text;
BEGIN
    WHILE cardinality(todo) > 0 LOOP
        r := todo[1];
        todo := todo[2:];
        CONTINUE WHEN r = ANY (seen);
        seen := seen || r;
        SELECT c.relkind, c.relrowsecurity INTO kind, rls FROM pg_class c WHERE c.oid = r;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        IF kind IN ('r', 'p') THEN
            IF rls OR EXISTS (SELECT 1 FROM pg_subscription_rel sr WHERE sr.srrelid = r) THEN
                RETURN NULL;
            END IF;
            todo := todo || ARRAY(SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = r);
        ELSIF kind = 'v' THEN
            SELECT w.ev_action::text INTO tree FROM pg_rewrite w WHERE w.ev_class = r AND w.rulename = '_RETURN';
            IF tree IS NULL OR NOT iterable_audience.query_tree_is_deterministic(tree) THEN
                RETURN NULL;
            END IF;
            todo := todo || ARRAY(SELECT DISTINCT d.refobjid FROM pg_rewrite w
                                    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
                                   WHERE w.ev_class = r AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r);
        ELSE
            RETURN NULL;
        END IF;
    END LOOP;
    RETURN ARRAY(SELECT DISTINCT x FROM unnest(seen) x ORDER BY x);
END
$$;

-- What of the relations' definitions a run's result depends on, as one text: their kind, storage
-- (TRUNCATE, a rewriting ALTER TABLE), columns, privileges, catalog row versions (most DDL), a
-- view's query, and the change trigger of each table with the version of its row (DISABLE/ENABLE
-- TRIGGER). Any difference means "changed".
CREATE FUNCTION iterable_audience.source_fingerprint(relids oid[]) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT md5(string_agg(coalesce(
               concat(c.oid, '|', c.relkind, '|', c.relfilenode, '|', c.xmin, '|', c.relacl::text, '|', c.relrowsecurity, '|',
                   (SELECT string_agg(concat_ws(':', a.attnum, a.attname, a.atttypid, a.atttypmod, a.attisdropped,
                                                a.attgenerated, a.attcollation, a.xmin), ',' ORDER BY a.attnum)
                      FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0), '|',
                   (SELECT md5(w.ev_action::text) || w.xmin FROM pg_rewrite w
                     WHERE w.ev_class = c.oid AND w.rulename = '_RETURN'), '|',
                   (SELECT string_agg(concat_ws(':', t.tgenabled, t.tgtype, t.xmin), ',') FROM pg_trigger t
                     WHERE t.tgrelid = c.oid AND t.tgname = 'iterable_audience_source_change'
                       AND t.tgfoid = 'iterable_audience.note_source_change()'::regprocedure)),
               'missing ' || r.relid), ';' ORDER BY r.ord))
      FROM unnest(relids) WITH ORDINALITY r(relid, ord)
      LEFT JOIN pg_class c ON c.oid = r.relid
$$;

-- Whether every table among the relations has a working change trigger (installing those that lack
-- one, when the current role may: TRIGGER privilege, and ownership to make it fire in replica
-- sessions too). A table locked by a long writer is waited for at most 2 s: then false (not tracked
-- this time, so the run reads the source).
CREATE FUNCTION iterable_audience.watch_source_tables(relids oid[]) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r oid;
    saved text := current_setting('lock_timeout');
BEGIN
    FOR r IN SELECT c.oid FROM pg_class c WHERE c.oid = ANY (relids) AND c.relkind IN ('r', 'p') LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = r
                                 AND t.tgname = 'iterable_audience_source_change'
                                 AND t.tgfoid = 'iterable_audience.note_source_change()'::regprocedure
                                 AND t.tgenabled = 'A' AND t.tgtype = 60);  -- statement, after, I/U/D/T
        IF NOT has_table_privilege(r, 'TRIGGER')
           OR NOT pg_has_role((SELECT c.relowner FROM pg_class c WHERE c.oid = r), 'USAGE') THEN
            RETURN false;
        END IF;
        BEGIN
            PERFORM set_config('lock_timeout', '2s', true);
            EXECUTE format('DROP TRIGGER IF EXISTS iterable_audience_source_change ON %s', r::regclass);
            EXECUTE format('CREATE TRIGGER iterable_audience_source_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE '
                           'ON %s FOR EACH STATEMENT EXECUTE FUNCTION iterable_audience.note_source_change()', r::regclass);
            EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER iterable_audience_source_change', r::regclass);
            -- Dropped with the extension (pg_dump keeps this too): DROP EXTENSION needs no CASCADE.
            EXECUTE format('ALTER TRIGGER iterable_audience_source_change ON %s DEPENDS ON EXTENSION iterable_audience',
                           r::regclass);
            PERFORM set_config('lock_timeout', saved, true);
        EXCEPTION WHEN OTHERS THEN
            PERFORM set_config('lock_timeout', saved, true);
            RETURN false;
        END;
    END LOOP;
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION iterable_audience.watch_source_tables(oid[]) FROM PUBLIC;

-- Drops the change triggers of tables no sync watches any more (drop_sync, alter_sync).
CREATE FUNCTION iterable_audience.unwatch_source_tables(relids oid[]) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r oid;
BEGIN
    FOR r IN SELECT c.oid FROM pg_class c WHERE c.oid = ANY (relids) AND c.relkind IN ('r', 'p')
               AND NOT EXISTS (SELECT 1 FROM iterable_audience.source_watch w
                                WHERE c.oid = ANY (w.read_relids) OR c.oid = ANY (w.pending_relids)) LOOP
        BEGIN
            PERFORM set_config('lock_timeout', '2s', true);
            EXECUTE format('DROP TRIGGER IF EXISTS iterable_audience_source_change ON %s', r::regclass);
        EXCEPTION WHEN OTHERS THEN
            NULL;  -- left in place: it costs the writers a little, never correctness
        END;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION iterable_audience.unwatch_source_tables(oid[]) FROM PUBLIC;

-- The relations of a sync's source as stored by create_sync: a schema-qualified relation name, or a
-- query (resolved by the parser itself, through a temporary view, with the caller's search_path;
-- the view is gone when this returns). NULL when not trackable. Called as the sync's owner.
CREATE FUNCTION iterable_audience.sync_source_relations(source text) RETURNS oid[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    probe oid;
    result oid[];
BEGIN
    IF source ~ '^("([^"]|"")+"|[a-z_][a-z0-9_$]*)\.("([^"]|"")+"|[a-z_][a-z0-9_$]*)$' THEN
        RETURN iterable_audience.source_relations(pg_catalog.to_regclass(source));
    END IF;
    BEGIN
        EXECUTE 'CREATE TEMP VIEW iterable_audience_source_probe AS ' || source;
        probe := pg_catalog.to_regclass('pg_temp.iterable_audience_source_probe');
        result := pg_catalog.array_remove(iterable_audience.source_relations(probe), probe);
        EXECUTE 'DROP VIEW pg_temp.iterable_audience_source_probe';
        RETURN result;
    EXCEPTION WHEN OTHERS THEN
        RETURN NULL;
    END;
END
$$;

-- Whether anything may have changed since a snapshot: a logged change it does not see, or a
-- relation whose definition differs.
CREATE FUNCTION iterable_audience.source_changed_since(relids oid[], fingerprint text, since pg_snapshot)
RETURNS boolean LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT relids IS NULL OR fingerprint IS NULL OR since IS NULL
        OR iterable_audience.source_fingerprint(relids) IS DISTINCT FROM fingerprint
        OR EXISTS (SELECT 1 FROM iterable_audience.source_change c
                    WHERE c.relid = ANY (relids) AND NOT pg_visible_in_snapshot(c.xact, since))
$$;



------------------------------------------------------------------------------------------------
-- Event syncs (issue 15)
------------------------------------------------------------------------------------------------

-- An event sync (create_event_sync) streams the rows of an append-only source past its cursor into
-- Iterable (docs/event-syncs.md). Its definition is a sync of kind 'events' with these columns; it
-- has no identifier columns of its own (they are in event_fields).
ALTER TABLE iterable_audience.sync DROP CONSTRAINT sync_check;
ALTER TABLE iterable_audience.sync
    ADD CONSTRAINT sync_identifier_column_check
        CHECK (kind = 'events' OR email_column IS NOT NULL OR user_id_column IS NOT NULL),
    ADD COLUMN cursor_column text,
    ADD COLUMN cursor_type text CHECK (cursor_type IN ('smallint', 'integer', 'bigint', 'numeric', 'timestamptz')),
    ADD COLUMN event_kind text CHECK (event_kind IN ('track', 'purchase', 'cart', 'device_token', 'browser_token',
                                                     'email_change')),
    ADD COLUMN event_fields jsonb,
    ADD COLUMN event_name text,
    ADD COLUMN start_from text CHECK (start_from IN ('beginning', 'now')),
    ADD COLUMN max_events_per_run bigint CHECK (max_events_per_run > 0),
    ADD CONSTRAINT sync_events_have_cursor CHECK ((kind = 'events') = (cursor_column IS NOT NULL AND event_kind IS NOT NULL));

ALTER TABLE iterable_audience.sync_runs
    ADD COLUMN planned_events bigint,
    ADD COLUMN tracked bigint NOT NULL DEFAULT 0,
    ADD COLUMN cursor_from text,
    ADD COLUMN cursor_to text;
COMMENT ON COLUMN iterable_audience.sync_runs.tracked IS 'Events (purchases, carts, tokens, email changes) Iterable acknowledged (event syncs)';
COMMENT ON COLUMN iterable_audience.sync_runs.cursor_from IS 'Event syncs: the smallest cursor value the run sent or refused';
COMMENT ON COLUMN iterable_audience.sync_runs.cursor_to IS 'Event syncs: the largest cursor value the run sent or refused';

ALTER TABLE iterable_audience.sync_batch DROP CONSTRAINT sync_batch_action_check;
ALTER TABLE iterable_audience.sync_batch ADD CONSTRAINT sync_batch_action_check
    CHECK (action IN ('subscribe', 'unsubscribe', 'update_user', 'forget', 'track', 'track_purchase', 'update_cart',
                      'register_device_token', 'register_browser_token', 'update_email'));

-- Where an event sync stands (docs/event-syncs.md, "Exactly once"): every row with a cursor at or
-- below watermark was handled and no other can still appear there; checkpoints: snapshots of the
-- transactions open when a run looked ([{"xmax": xid8 text, "vxids": [text], "max": cursor text}]),
-- promoted into the watermark once all of them have ended.
CREATE TABLE iterable_audience.event_sync_state (
    sync_id     bigint PRIMARY KEY REFERENCES iterable_audience.sync ON DELETE CASCADE,
    watermark   text,
    checkpoints jsonb NOT NULL DEFAULT '[]'
);
-- The rows above the watermark already handled (row_key: cursor # md5 of the row # ordinal), those
-- to send again (state 'retry': a failure that may succeed later, with retry_failed_records), and
-- email changes sent whose answer is not recorded yet (state 'in_flight': users/updateEmail is not
-- idempotent, so a resend that finds the change made is known to be that change).
CREATE TABLE iterable_audience.event_sync_sent (
    sync_id     bigint NOT NULL REFERENCES iterable_audience.sync ON DELETE CASCADE,
    row_key     text NOT NULL,
    cursor_value text NOT NULL,
    event_id    text NOT NULL,
    state       text NOT NULL CHECK (state IN ('done', 'retry', 'in_flight')),
    run_id      bigint NOT NULL,
    PRIMARY KEY (sync_id, row_key)
);
CREATE INDEX ON iterable_audience.event_sync_sent (sync_id, state);
SELECT pg_catalog.pg_extension_config_dump('iterable_audience.event_sync_state', '');
SELECT pg_catalog.pg_extension_config_dump('iterable_audience.event_sync_sent', '');

CREATE OR REPLACE VIEW iterable_audience.syncs WITH (security_barrier) AS
    SELECT s.sync_id, s.sync_name, a.account_name, s.source, s.list_id, s.email_column, s.user_id_column,
           s.data_fields, s.schedule, s.paused, s.next_run_at,
           s.owner::regrole AS owner, s.update_existing_users_only, s.campaign_id, s.channel_unsubscribe,
           s.retain_sync_logs, s.sync_log_retention_days, s.snapshot_retention, s.retry_failed_records,
           s.max_removal_fraction, s.created_at, s.updated_at,
           last.status AS last_run_status, last.finished_at AS last_run_finished_at,
           (SELECT n.table_name FROM iterable_audience.snapshot n
             WHERE n.sync_id = s.sync_id AND n.filled ORDER BY n.run_id DESC LIMIT 1) AS snapshot_table,
           s.kind, s.merge_nested_objects, s.prefer_user_id,
           s.cursor_column, s.event_kind, s.event_fields, s.event_name, s.start_from, s.max_events_per_run,
           (SELECT e.watermark FROM iterable_audience.event_sync_state e WHERE e.sync_id = s.sync_id) AS event_watermark
      FROM iterable_audience.sync s
      JOIN iterable_audience.account a USING (account_id)
      LEFT JOIN LATERAL (SELECT r.status, r.finished_at FROM iterable_audience.sync_runs r
                          WHERE r.sync_id = s.sync_id ORDER BY r.run_id DESC LIMIT 1) last ON true
     WHERE pg_catalog.pg_has_role(s.owner, 'USAGE');

CREATE OR REPLACE VIEW iterable_audience.sync_progress WITH (security_barrier) AS
    SELECT r.run_id, r.sync_name,
           r.kind,
           r.phase, r.records_planned,
           r.subscribed + r.unsubscribed + r.updated + r.failed + r.tracked AS records_done,
           r.api_requests, r.rate_limited, r.started_at
      FROM iterable_audience.sync_runs r
     WHERE r.status = 'running'
       AND r.sync_id IN (SELECT v.sync_id FROM iterable_audience.visible_sync_ids v)
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                    WHERE l.locktype = 'advisory' AND l.classid = 6749 AND l.objsubid = 2 AND l.granted
                      AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                                         WHERE d.datname = pg_catalog.current_database())
                      AND l.objid::bigint = r.sync_id % 2147483647);

CREATE FUNCTION iterable_audience.create_event_sync(
    sync_name     text,
    account_name  text,
    source        text,
    cursor_column text,
    kind          text    DEFAULT 'track',
    fields        jsonb   DEFAULT '{}',
    data_fields   jsonb   DEFAULT NULL,
    event_name    text    DEFAULT NULL,
    start_from    text    DEFAULT 'beginning',
    max_events_per_run bigint DEFAULT NULL,
    schedule      text    DEFAULT 'manual',
    retain_sync_logs        boolean DEFAULT true,
    sync_log_retention_days integer DEFAULT 30,
    retry_failed_records    boolean DEFAULT true)
RETURNS bigint AS 'MODULE_PATHNAME', 'ia_create_event_sync' LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION iterable_audience.create_event_sync(text, text, text, text, text, jsonb, jsonb, text, text, bigint,
                                                       text, boolean, integer, boolean) IS
    'A sync that sends each row of an append-only source past its cursor to Iterable once: events, purchases, carts, device and browser tokens, email changes';
