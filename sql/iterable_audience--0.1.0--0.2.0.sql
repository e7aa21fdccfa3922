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



------------------------------------------------------------------------------------------------
-- Operability: health, progress, alerts, drift (issue 19)
------------------------------------------------------------------------------------------------



------------------------------------------------------------------------------------------------
-- Pacing and continuous syncs (issue 18)
------------------------------------------------------------------------------------------------



------------------------------------------------------------------------------------------------
-- Event syncs (issue 15)
------------------------------------------------------------------------------------------------
