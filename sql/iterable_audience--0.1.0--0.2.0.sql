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



------------------------------------------------------------------------------------------------
-- Backups: user state marked for pg_dump (issue 17)
------------------------------------------------------------------------------------------------



------------------------------------------------------------------------------------------------
-- Operability: health, progress, alerts, drift (issue 19)
------------------------------------------------------------------------------------------------



------------------------------------------------------------------------------------------------
-- Pacing and continuous syncs (issue 18)
------------------------------------------------------------------------------------------------



------------------------------------------------------------------------------------------------
-- Event syncs (issue 15)
------------------------------------------------------------------------------------------------
