#include "batch_recording.hpp"

#include "pg/spi.hpp"
#include "pg/transaction.hpp"

namespace ia {

pg::SqlResult
load_and_mark_batch(const RunTarget &t, bool unsubscribe, int64_t after_seq, int64_t size)
{
	const std::string in_doubt = std::to_string(kInDoubtHash);
	// One statement: the batch's plan rows, and their marks in the snapshot. An unsubscribed record
	// stays in the snapshot until Iterable acknowledges it; a subscribed one is there from now on.
	std::string sql = "WITH b AS (SELECT seq, email, user_id, data_fields, record_key, prev_hash FROM " + t.plan_table +
	                  " WHERE batch_class = $1::integer AND seq > $2::bigint ORDER BY seq LIMIT $3::bigint), ";
	if (unsubscribe)
		sql += "m AS (UPDATE " + t.snapshot_table + " s SET row_hash = " + in_doubt +
		       " FROM b WHERE s.record_key = b.record_key) ";
	else  // a record the snapshot did not have at planning (prev_hash NULL) is not in it: no conflict
		sql += "m AS (INSERT INTO " + t.snapshot_table +
		       " (record_key, email, user_id, row_hash, synced_at, run_id) SELECT b.record_key, b.email, b.user_id, " +
		       in_doubt + ", clock_timestamp(), " + std::to_string(t.run_id) + " FROM b WHERE b.prev_hash IS NULL), "
		       "u AS (UPDATE " + t.snapshot_table + " s SET row_hash = " + in_doubt +
		       " FROM b WHERE b.prev_hash IS NOT NULL AND s.record_key = b.record_key) ";
	sql += "SELECT seq, email, user_id, data_fields::text FROM b ORDER BY seq";
	return pg::in_transaction([&] {
		// The marks must be on disk before Iterable may apply the batch, whatever the server's setting.
		pg::exec("SET LOCAL synchronous_commit = on");
		return pg::exec(sql.c_str(), {unsubscribe ? "0" : "1", std::to_string(after_seq), std::to_string(size)});
	});
}

void
record_batch(const RunTarget &t, const BatchOutcome &o)
{
	std::vector<pg::SqlValue> failed_seqs, codes, messages, retryable;
	for (const RowFailure &f : o.failures) {
		failed_seqs.emplace_back(std::to_string(f.seq));
		codes.emplace_back(f.error_code);
		messages.emplace_back(f.error_message);
		retryable.emplace_back(f.retryable ? "t" : "f");
	}
	const std::string run = std::to_string(t.run_id), sync = std::to_string(t.sync_id);
	// $1 (unused here) keeps the parameter numbers of the statements below stable.
	const std::string in_batch = "p.batch_class = " + std::string(o.unsubscribe ? "0" : "1") + " AND p.seq > " +
	                             std::to_string(o.after_seq) + " AND p.seq <= " + std::to_string(o.last_seq);
	const std::vector<pg::SqlValue> params = {std::nullopt, pg::array_literal(failed_seqs),
	                                          pg::array_literal(codes), pg::array_literal(messages),
	                                          pg::array_literal(retryable)};
	const std::string failed = "unnest($2::bigint[], $3::text[], $4::text[], $5::boolean[]) AS f(seq, code, message, retryable)";

	// One statement reads the batch's plan rows once, writes its log rows and applies to the snapshot
	// what Iterable acknowledged, and nothing else.
	std::string sql = "WITH batch AS (SELECT p.record_key, p.operation, p.action, p.email, p.user_id, p.row_hash, "
	                  "p.prev_hash, p.error_message, f.code, f.message, p.seq FROM " + t.plan_table + " p LEFT JOIN " + failed +
	                  " ON f.seq = p.seq WHERE " + in_batch + ")";
	if (t.keep_logs)
		sql += ", logs AS (INSERT INTO iterable_audience.sync_logs (run_id, sync_id, record_key, operation, action, "
		       "email, user_id, status, error_code, error_message) SELECT " + run + ", " + sync +
		       ", b.record_key, b.operation, b.action, b.email, b.user_id, "
		       "CASE WHEN b.code IS NULL THEN 'succeeded' ELSE 'failed' END, b.code, coalesce(b.message, b.error_message) "
		       "FROM batch b ORDER BY b.seq)";
	if (o.unsubscribe)
		sql += ", snap AS (DELETE FROM " + t.snapshot_table +
		       " s USING batch b WHERE b.code IS NULL AND s.record_key = b.record_key)";
	else
		// Every record of the batch is in the snapshot since it was marked in doubt (load_and_mark_batch).
		sql += ", snap AS (UPDATE " + t.snapshot_table + " s SET email = b.email, user_id = b.user_id, "
		       "row_hash = b.row_hash, synced_at = clock_timestamp(), run_id = " + run +
		       " FROM batch b WHERE b.code IS NULL AND s.record_key = b.record_key)";
	// Records Iterable surely did not change lose their in-doubt mark: back to what the snapshot had
	// before the batch (a new record leaves it). With an unknown outcome the marks stay.
	if (!o.failures.empty() && !o.outcome_unknown)
		sql += ", undo_new AS (DELETE FROM " + t.snapshot_table + " s USING batch b WHERE b.code IS NOT NULL "
		       "AND b.prev_hash IS NULL AND s.record_key = b.record_key), "
		       "undo_old AS (UPDATE " + t.snapshot_table + " s SET row_hash = b.prev_hash FROM batch b "
		       "WHERE b.code IS NOT NULL AND b.prev_hash IS NOT NULL AND s.record_key = b.record_key)";
	sql += " SELECT 1";
	pg::exec(sql.c_str(), params);

	// Remember failures (with the hash of the values that failed), forget successes.
	if (t.failures_possible)
		pg::exec(("DELETE FROM iterable_audience.record_failure r USING " + t.plan_table +
		          " p WHERE r.sync_id = " + sync + " AND " + in_batch + " AND p.seq <> ALL($2::bigint[]) "
		          "AND r.record_key = p.record_key")
		             .c_str(),
		         {params[0], params[1]});
	if (!o.failures.empty())
		pg::exec(("INSERT INTO iterable_audience.record_failure (sync_id, record_key, value_hash, error_code, retryable, "
		          "run_id) SELECT " + sync + ", p.record_key, p.row_hash, f.code, f.retryable, " + run + " FROM " +
		          t.plan_table + " p JOIN " + failed +
		          " ON f.seq = p.seq WHERE " + in_batch + " AND p.record_key IS NOT NULL "
		          "ON CONFLICT (sync_id, record_key) DO UPDATE SET value_hash = EXCLUDED.value_hash, "
		          "error_code = EXCLUDED.error_code, retryable = EXCLUDED.retryable, run_id = EXCLUDED.run_id")
		             .c_str(),
		         params);

	int64_t rows = o.rows;
	int64_t failures = static_cast<int64_t>(o.failures.size());
	std::string counter = o.unsubscribe ? "unsubscribed" : "subscribed";
	pg::exec(("UPDATE iterable_audience.sync_runs SET " + counter + " = " + counter + " + " +
	          std::to_string(rows - failures) + ", failed = failed + " + std::to_string(failures) +
	          ", api_requests = api_requests + " + std::to_string(o.requests) +
	          ", rate_limited = rate_limited + " + std::to_string(o.rate_limited) + " WHERE run_id = " + run)
	             .c_str());
}

int64_t
record_refused_rows(const RunTarget &t)
{
	const std::string run = std::to_string(t.run_id), sync = std::to_string(t.sync_id);
	pg::SqlValue count = pg::exec_scalar(("SELECT count(*) FROM " + t.plan_table + " WHERE NOT valid").c_str());
	int64_t refused = count ? std::stoll(*count) : 0;
	if (refused == 0)
		return 0;
	if (t.keep_logs)
		pg::exec(("INSERT INTO iterable_audience.sync_logs (run_id, sync_id, record_key, operation, action, email, "
		          "user_id, status, error_code, error_message) SELECT " + run + ", " + sync +
		          ", record_key, operation, action, email, user_id, 'failed', error_code, error_message FROM " +
		          t.plan_table + " WHERE NOT valid ORDER BY seq")
		             .c_str());
	pg::exec(("INSERT INTO iterable_audience.record_failure (sync_id, record_key, value_hash, error_code, retryable, "
	          "run_id) SELECT DISTINCT ON (record_key) " + sync + ", record_key, row_hash, error_code, true, " + run +
	          " FROM " + t.plan_table + " WHERE NOT valid AND record_key IS NOT NULL "
	          "AND error_code <> 'duplicate_key' ORDER BY record_key, seq "
	          "ON CONFLICT (sync_id, record_key) DO UPDATE SET value_hash = EXCLUDED.value_hash, "
	          "error_code = EXCLUDED.error_code, retryable = EXCLUDED.retryable, run_id = EXCLUDED.run_id")
	             .c_str());
	pg::exec(("UPDATE iterable_audience.sync_runs SET failed = failed + " + std::to_string(refused) +
	          " WHERE run_id = " + run)
	             .c_str());
	return refused;
}

}  // namespace ia
