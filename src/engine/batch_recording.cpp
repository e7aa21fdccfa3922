#include "engine/batch_recording.hpp"

#include "pg/spi.hpp"
#include "pg/transaction.hpp"

namespace ia {

namespace {

const int64_t kRefusedChunk = 1000;  // refused rows per sync_batch row

}  // namespace

std::string
record_bytes_sql()
{
	// json_build_object's text has a space around each ':' and after each ',': never shorter than
	// the compact JSON the request carries; 64 more bytes cover a record's flags and its comma.
	return "(octet_length(json_build_object('email', email, 'userId', user_id, 'dataFields', data_fields)::text) + 64)";
}

std::vector<LoadedBatch>
load_batches(const RunTarget &t, int first_batch_no, const SendOperation &op, const std::string &after_row,
             const std::vector<int64_t> &sizes)
{
	const std::string run = std::to_string(t.run_id), sync = std::to_string(t.sync_id);
	// The rows of a batch: the next $3 of the class in physical order; with a body cap, only as
	// many of them as fit in it (a running sum of their sizes, in the same order).
	std::string rows = "SELECT ctid, record_key, operation, email, user_id, data_fields, row_hash, error_message FROM " +
	                   t.plan_table + " WHERE ctid > $2::tid AND batch_class = $1::integer LIMIT $3::bigint";
	if (op.limits.max_body_bytes > 0)
		rows = "SELECT * FROM (SELECT *, sum(" + record_bytes_sql() +
		       ") OVER (ORDER BY ctid ROWS UNBOUNDED PRECEDING) AS body_bytes FROM (" + rows + ") l) w "
		       "WHERE body_bytes <= " + std::to_string(op.limits.max_body_bytes - kBodyEnvelopeBytes);
	// One statement per batch: its plan rows (a TID range scan from after_row on, in physical order,
	// which feeds the aggregates in that order) aggregated into one row of arrays, written as the
	// batch's ledger row and returned as they are: one row of arrays costs far less to hand back
	// than a row per record.
	std::string sql =
	    "WITH b AS (SELECT max(ctid)::text AS last_row, array_agg(record_key) AS record_keys, "
	    "array_agg(operation) AS operations, array_agg(email) AS emails, array_agg(user_id) AS user_ids, "
	    "array_agg(row_hash) AS row_hashes, "
	    "CASE WHEN bool_or(error_message IS NOT NULL) THEN array_agg(error_message) END AS notes, "
	    "CASE WHEN bool_or(data_fields IS NOT NULL) THEN array_agg(data_fields::text) END AS data_fields "
	    "FROM (" + rows + ") r), "
	    "ledger AS (INSERT INTO iterable_audience.sync_batch (run_id, batch_no, sync_id, kind, action, logged, "
	    "record_keys, operations, emails, user_ids, row_hashes, notes) SELECT " + run + ", $4::integer, " + sync +
	    ", 'sent', " + pg::quote_literal(op.action) + ", " + (t.keep_logs ? "true" : "false") +
	    ", record_keys, operations, emails, user_ids, row_hashes, notes FROM b WHERE last_row IS NOT NULL) "
	    "SELECT ARRAY[last_row], emails, user_ids, data_fields FROM b";
	return pg::in_transaction([&] {
		// The batches must be on disk before Iterable may apply them, whatever the server's setting.
		pg::exec_prepared("SET LOCAL synchronous_commit = on");
		std::vector<LoadedBatch> batches;
		std::string after = after_row;
		for (int64_t size : sizes) {
			int batch_no = first_batch_no + static_cast<int>(batches.size());
			std::vector<std::vector<pg::SqlValue>> columns = pg::exec_prepared_arrays(
			    sql, {std::to_string(op.batch_class), after, std::to_string(size), std::to_string(batch_no)});
			if (columns.size() != 4 || columns[0].size() != 1 || !columns[0][0])
				break;  // no row left in this class
			LoadedBatch batch{batch_no, *columns[0][0], std::move(columns[1]), std::move(columns[2]),
			                  std::move(columns[3])};
			after = batch.last_row;
			batches.push_back(std::move(batch));
		}
		return batches;
	});
}

int64_t
record_local_operation(const RunTarget &t, int batch_no, const SendOperation &op)
{
	const std::string cls = std::to_string(op.batch_class);
	return pg::in_transaction([&] {
		pg::exec_prepared("SET LOCAL synchronous_commit = on");
		pg::SqlValue n = pg::exec_scalar(
		    ("WITH ledger AS (INSERT INTO iterable_audience.sync_batch (run_id, batch_no, sync_id, kind, action, logged, "
		     "answered_at, record_keys, operations, emails, user_ids, row_hashes) SELECT " + std::to_string(t.run_id) +
		     ", " + std::to_string(batch_no) + ", " + std::to_string(t.sync_id) + ", 'sent', " +
		     pg::quote_literal(op.action) + ", false, clock_timestamp(), array_agg(record_key), array_agg(operation), "
		     "array_agg(email), array_agg(user_id), array_agg(row_hash) FROM " + t.plan_table +
		     " WHERE batch_class = " + cls + " HAVING count(*) > 0 RETURNING cardinality(record_keys)) "
		     "SELECT coalesce(sum(cardinality), 0) FROM ledger")
		        .c_str());
		return n ? std::stoll(*n) : 0;
	});
}

void
forget_unsent_batches(const RunTarget &t, const std::vector<int> &batch_nos)
{
	std::vector<pg::SqlValue> numbers;
	for (int n : batch_nos)
		numbers.emplace_back(std::to_string(n));
	pg::exec("DELETE FROM iterable_audience.sync_batch WHERE run_id = $1::bigint AND batch_no = ANY " + pg::array_param(2, "integer"),
	         {std::to_string(t.run_id), pg::array_literal(numbers)});
}

void
record_batch(const RunTarget &t, const BatchOutcome &o)
{
	const std::string run = std::to_string(t.run_id), sync = std::to_string(t.sync_id);
	// The answer need not wait for its WAL flush: were it lost in a crash, the batch would be
	// unanswered in the ledger, so in doubt, and sent again by the next run, which is harmless
	// (subscribe and unsubscribe are idempotent). The next durable commit flushes it anyway.
	pg::exec_prepared("SET LOCAL synchronous_commit = off");
	// Per record of the batch, in its order: the error code and message (NULL when it succeeded).
	pg::SqlValue codes, messages;
	std::vector<pg::SqlValue> failed_positions, failed_codes, failed_retryable;
	if (!o.failures.empty()) {
		std::vector<pg::SqlValue> code_list(static_cast<size_t>(o.rows)), message_list(static_cast<size_t>(o.rows));
		for (const RowFailure &f : o.failures) {
			code_list.at(f.index) = f.error_code;
			message_list.at(f.index) = f.error_message;
			failed_positions.emplace_back(std::to_string(f.index + 1));
			failed_codes.emplace_back(f.error_code);
			failed_retryable.emplace_back(f.retryable ? "t" : "f");
		}
		codes = pg::array_literal(code_list);
		messages = pg::array_literal(message_list);
	}
	const std::string batch_no = std::to_string(o.batch_no);
	pg::exec_prepared("UPDATE iterable_audience.sync_batch SET answered_at = clock_timestamp(), "
	                  "outcome_unknown = $3::boolean, error_codes = $4::text[], error_messages = $5::text[] "
	                  "WHERE run_id = $1::bigint AND batch_no = $2::integer",
	                  {run, batch_no, o.outcome_unknown ? "t" : "f", codes, messages});

	// Remember failures (with the hash of the values that failed), forget successes: the batch's
	// records are read from its ledger row, by their position in it (1-based).
	const std::string batch_records =
	    "iterable_audience.sync_batch b CROSS JOIN LATERAL unnest(b.record_keys, b.row_hashes) WITH ORDINALITY "
	    "AS u(record_key, row_hash, i)";
	const std::string positions = pg::array_literal(failed_positions);
	if (t.failures_possible)
		pg::exec_prepared("DELETE FROM iterable_audience.record_failure r USING " + batch_records +
		                      " WHERE b.run_id = $1::bigint AND b.batch_no = $2::integer AND u.i <> ALL " + pg::array_param(3, "bigint") + " "
		                      "AND r.sync_id = " + sync + " AND r.record_key = u.record_key",
		                  {run, batch_no, positions});
	if (!o.failures.empty())
		pg::exec(("INSERT INTO iterable_audience.record_failure (sync_id, record_key, value_hash, error_code, retryable, "
		          "run_id) SELECT " + sync + ", u.record_key, u.row_hash, f.code, f.retryable, " + run + " FROM " +
		          batch_records + " JOIN unnest($3::bigint[], $4::text[], $5::boolean[]) AS f(i, code, retryable) "
		          "ON f.i = u.i WHERE b.run_id = $1::bigint AND b.batch_no = $2::integer AND u.record_key IS NOT NULL "
		          "ON CONFLICT (sync_id, record_key) DO UPDATE SET value_hash = EXCLUDED.value_hash, "
		          "error_code = EXCLUDED.error_code, retryable = EXCLUDED.retryable, run_id = EXCLUDED.run_id")
		             .c_str(),
		         {run, batch_no, positions, pg::array_literal(failed_codes), pg::array_literal(failed_retryable)});

	int64_t failures = static_cast<int64_t>(o.failures.size());
	std::string counter = o.done_column;
	pg::exec_prepared("UPDATE iterable_audience.sync_runs SET " + counter + " = " + counter + " + $2::bigint, "
	                  "failed = failed + $3::bigint, api_requests = api_requests + $4::bigint, "
	                  "rate_limited = rate_limited + $5::bigint WHERE run_id = $1::bigint",
	                  {run, std::to_string(o.rows - failures), std::to_string(failures), std::to_string(o.requests),
	                   std::to_string(o.rate_limited)});
}

int64_t
record_refused_rows(const RunTarget &t)
{
	const std::string run = std::to_string(t.run_id), sync = std::to_string(t.sync_id);
	pg::SqlValue count = pg::exec_scalar(("SELECT count(*) FROM " + t.plan_table + " WHERE batch_class = 2").c_str());
	int64_t refused = count ? std::stoll(*count) : 0;
	if (refused == 0)
		return 0;
	// Chunks of refused rows numbered -1, -2, ... (sent batches count up from 1).
	if (t.keep_logs)
		pg::exec(("INSERT INTO iterable_audience.sync_batch (run_id, batch_no, sync_id, kind, action, logged, answered_at, "
		          "record_keys, operations, emails, user_ids, row_hashes, error_codes, error_messages) "
		          "SELECT " + run + ", -1 - chunk, " + sync + ", 'refused', " + pg::quote_literal(t.refused_action) + ", true, clock_timestamp(), "
		          "array_agg(record_key ORDER BY seq), array_agg(operation ORDER BY seq), array_agg(email ORDER BY seq), "
		          "array_agg(user_id ORDER BY seq), array_agg(row_hash ORDER BY seq), array_agg(error_code ORDER BY seq), "
		          "array_agg(error_message ORDER BY seq) FROM (SELECT *, (row_number() OVER (ORDER BY seq) - 1) / " +
		          std::to_string(kRefusedChunk) + " AS chunk FROM " + t.plan_table +
		          " WHERE batch_class = 2) r GROUP BY chunk")
		             .c_str());
	pg::exec(("INSERT INTO iterable_audience.record_failure (sync_id, record_key, value_hash, error_code, retryable, "
	          "run_id) SELECT DISTINCT ON (record_key) " + sync + ", record_key, row_hash, error_code, true, " + run +
	          " FROM " + t.plan_table + " WHERE batch_class = 2 AND record_key IS NOT NULL "
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
