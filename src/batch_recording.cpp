#include "batch_recording.hpp"

#include "pg/spi.hpp"

namespace ia {

void
record_batch(const RunTarget &t, const BatchOutcome &o)
{
	std::vector<pg::SqlValue> seqs, failed_seqs, codes, messages, retryable;
	seqs.reserve(o.seqs.size());
	for (int64_t seq : o.seqs)
		seqs.emplace_back(std::to_string(seq));
	for (const RowFailure &f : o.failures) {
		failed_seqs.emplace_back(std::to_string(f.seq));
		codes.emplace_back(f.error_code);
		messages.emplace_back(f.error_message);
		retryable.emplace_back(f.retryable ? "t" : "f");
	}
	const std::string run = std::to_string(t.run_id), sync = std::to_string(t.sync_id);
	const std::vector<pg::SqlValue> params = {pg::array_literal(seqs), pg::array_literal(failed_seqs),
	                                          pg::array_literal(codes), pg::array_literal(messages),
	                                          pg::array_literal(retryable)};
	const std::string failed = "unnest($2::bigint[], $3::text[], $4::text[], $5::boolean[]) AS f(seq, code, message, retryable)";

	// One statement reads the batch's plan rows once, writes its log rows and applies to the snapshot
	// what Iterable acknowledged, and nothing else.
	std::string sql = "WITH batch AS (SELECT p.record_key, p.operation, p.action, p.email, p.user_id, p.row_hash, "
	                  "p.error_message, f.code, f.message, p.seq FROM " + t.plan_table + " p LEFT JOIN " + failed +
	                  " ON f.seq = p.seq WHERE p.seq = ANY($1::bigint[]))";
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
		sql += ", snap AS (INSERT INTO " + t.snapshot_table +
		       " (record_key, email, user_id, row_hash, synced_at, run_id) SELECT b.record_key, b.email, b.user_id, "
		       "b.row_hash, clock_timestamp(), " + run + " FROM batch b WHERE b.code IS NULL "
		       "ON CONFLICT (record_key) DO UPDATE SET email = EXCLUDED.email, user_id = EXCLUDED.user_id, "
		       "row_hash = EXCLUDED.row_hash, synced_at = EXCLUDED.synced_at, run_id = EXCLUDED.run_id)";
	sql += " SELECT 1";
	pg::exec(sql.c_str(), params);

	// Remember failures (with the hash of the values that failed), forget successes.
	if (t.failures_possible)
		pg::exec(("DELETE FROM iterable_audience.record_failure r USING " + t.plan_table +
		          " p WHERE r.sync_id = " + sync + " AND p.seq = ANY($1::bigint[]) AND p.seq <> ALL($2::bigint[]) "
		          "AND r.record_key = p.record_key")
		             .c_str(),
		         {params[0], params[1]});
	if (!o.failures.empty())
		pg::exec(("INSERT INTO iterable_audience.record_failure (sync_id, record_key, value_hash, error_code, retryable, "
		          "run_id) SELECT " + sync + ", p.record_key, p.row_hash, f.code, f.retryable, " + run + " FROM " +
		          t.plan_table + " p JOIN " + failed +
		          " ON f.seq = p.seq WHERE p.seq = ANY($1::bigint[]) AND p.record_key IS NOT NULL "
		          "ON CONFLICT (sync_id, record_key) DO UPDATE SET value_hash = EXCLUDED.value_hash, "
		          "error_code = EXCLUDED.error_code, retryable = EXCLUDED.retryable, run_id = EXCLUDED.run_id")
		             .c_str(),
		         params);

	int64_t rows = static_cast<int64_t>(o.seqs.size());
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
