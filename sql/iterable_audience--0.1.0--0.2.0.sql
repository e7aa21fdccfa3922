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



------------------------------------------------------------------------------------------------
-- Event syncs (issue 15)
------------------------------------------------------------------------------------------------
