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



------------------------------------------------------------------------------------------------
-- Pacing and continuous syncs (issue 18)
------------------------------------------------------------------------------------------------



------------------------------------------------------------------------------------------------
-- Event syncs (issue 15)
------------------------------------------------------------------------------------------------
