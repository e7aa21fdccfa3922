-- iterable_audience 0.1.0 -> 0.2.0. A new installation of 0.2.0 runs the 0.1.0 install script and
-- then this one, so every installation, upgraded or new, has the same objects.
-- Released scripts are never edited: a later change is a new version with its own upgrade script.
\echo Use "ALTER EXTENSION iterable_audience UPDATE TO '0.2.0'" to load this file. \quit

------------------------------------------------------------------------------------------------
-- Sync kinds and user syncs (issue 14)
------------------------------------------------------------------------------------------------



------------------------------------------------------------------------------------------------
-- Secrets: API keys redacted by value from logs already written (issue 16)
------------------------------------------------------------------------------------------------



------------------------------------------------------------------------------------------------
-- Backups: user state marked for pg_dump (issue 17)
------------------------------------------------------------------------------------------------



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
           'list'::text AS kind,  -- kind: replaced by syncs.kind when issue 14 merges
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
           'list'::text AS kind,  -- kind: replaced by sync_runs.kind when issue 14 merges
           r.phase, r.records_planned,
           r.subscribed + r.unsubscribed + r.failed AS records_done,
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
                                 'kind', 'list',  -- kind: NEW.kind when issue 14 merges
                                 'status', NEW.status, 'failed', NEW.failed, 'error', NEW.error)::text;
    IF octet_length(payload) > limit_bytes THEN
        -- The longest prefix of the error (in characters) that fits with "..." appended.
        base := octet_length(json_build_object('sync_name', NEW.sync_name, 'run_id', NEW.run_id, 'kind', 'list',
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
        payload := json_build_object('sync_name', NEW.sync_name, 'run_id', NEW.run_id, 'kind', 'list',
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
