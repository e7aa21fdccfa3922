-- The C++/PostgreSQL seam: errors cross in both directions and leave the session usable.
SELECT iterable_audience._seam_selftest('ok');
-- A C++ exception becomes an ERROR after unwinding.
SELECT iterable_audience._seam_selftest('cpp_exception');
SELECT iterable_audience._seam_selftest('user_error');
-- A PostgreSQL error raised under live C++ objects is caught, rethrown as C++, and re-raised.
SELECT iterable_audience._seam_selftest('pg_error');
SELECT iterable_audience._seam_selftest('spi_error');
SELECT iterable_audience._seam_selftest('bad_alloc');
-- Each keeps its SQLSTATE (and hint) when caught in PL/pgSQL.
DO $$
DECLARE
    mode text;
    state text;
    msg text;
    hint text;
BEGIN
    FOREACH mode IN ARRAY ARRAY['cpp_exception', 'user_error', 'pg_error', 'spi_error', 'bad_alloc'] LOOP
        BEGIN
            PERFORM iterable_audience._seam_selftest(mode);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
            RAISE NOTICE '% -> % "%" hint "%"', mode, state, msg, hint;
        END;
    END LOOP;
END
$$;
-- Every C++ object of those calls was destroyed: 11 calls so far, one Witness each.
SELECT iterable_audience._seam_selftest('destructors_run');
-- Inside a transaction: the error aborts only the subtransaction, and the session goes on.
BEGIN;
SAVEPOINT s;
SELECT iterable_audience._seam_selftest('spi_error');
ROLLBACK TO s;
SELECT iterable_audience._seam_selftest('ok') AS still_usable;
COMMIT;
-- Ordinary roles may not call the self-test.
CREATE ROLE seam_user;
GRANT USAGE ON SCHEMA iterable_audience TO seam_user;
SET ROLE seam_user;
SELECT iterable_audience._seam_selftest('ok');
RESET ROLE;
REVOKE USAGE ON SCHEMA iterable_audience FROM seam_user;
DROP ROLE seam_user;
