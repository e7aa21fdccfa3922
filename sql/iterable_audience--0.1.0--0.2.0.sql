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



------------------------------------------------------------------------------------------------
-- Event syncs (issue 15)
------------------------------------------------------------------------------------------------
