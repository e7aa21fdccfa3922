#include "engine/sync_kind.hpp"
#include "engine/batch_recording.hpp"
#include "engine/plan_sql.hpp"

#include "pg/spi.hpp"

extern "C" {
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "tcop/tcopprot.h"
}

namespace ia {

using pg::UserError;

namespace {

const char *const kSourceHint =
    "Pass a table or view name ('public.customers') or one SELECT statement "
    "('SELECT id, email FROM customers WHERE vip').";

// Parses text as SQL; returns the statement list, or nullptr when it does not parse.
List *
parse_sql(const std::string &text)
{
	MemoryContext ctx = CurrentMemoryContext;
	try {
		return pg::guard([&] { return pg_parse_query(text.c_str()); });
	} catch (const pg::PgError &) {
		MemoryContextSwitchTo(ctx);
		return nullptr;
	}
}

bool
has_data_modifying_cte(SelectStmt *select)
{
	if (select->withClause == nullptr)
		return false;
	ListCell *lc;
	foreach (lc, select->withClause->ctes) {
		CommonTableExpr *cte = static_cast<CommonTableExpr *>(lfirst(lc));
		if (!IsA(cte->ctequery, SelectStmt))
			return true;
	}
	return false;
}

// A single SELECT (no data-modifying WITH, no SELECT INTO)?
bool
is_single_select(const std::string &text, std::string *why)
{
	List *stmts = parse_sql(text);
	if (stmts == nullptr)
		return false;
	if (list_length(stmts) != 1) {
		*why = "the source query must be exactly one statement";
		return false;
	}
	Node *stmt = linitial_node(RawStmt, stmts)->stmt;
	if (!IsA(stmt, SelectStmt)) {
		*why = "the source query must be a SELECT";
		return false;
	}
	SelectStmt *select = reinterpret_cast<SelectStmt *>(stmt);
	if (select->intoClause != nullptr) {
		*why = "the source query must not be SELECT INTO";
		return false;
	}
	if (has_data_modifying_cte(select)) {
		*why = "the source query must not modify data (INSERT, UPDATE or DELETE in WITH)";
		return false;
	}
	return true;
}

std::string
strip_statement(const std::string &source)
{
	std::string s = source;
	auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
	while (!s.empty() && (is_space(s.back()) || s.back() == ';'))
		s.pop_back();
	size_t start = 0;
	while (start < s.size() && is_space(s[start]))
		start++;
	return s.substr(start);
}

std::string
column_ref(const std::string &column)
{
	return "src." + pg::quote_identifier(column);
}

}  // namespace

std::string
canonical_source(const std::string &raw)
{
	std::string source = strip_statement(raw);
	if (source.empty())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "source must not be empty", kSourceHint);
	std::string why;
	if (is_single_select(source, &why))
		return source;
	if (!why.empty())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, why, kSourceHint);
	// Not a query: a relation name, resolved now so that later search_path changes do not matter.
	pg::SqlValue qualified = pg::exec_scalar(
	    "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c "
	    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
	    "WHERE c.oid = pg_catalog.to_regclass($1) AND c.relkind IN ('r', 'v', 'm', 'f', 'p')",
	    {source}, true);
	if (!qualified)
		throw UserError(ERRCODE_UNDEFINED_TABLE,
		                "source \"" + source + "\" is neither a table or view that exists nor a SELECT statement",
		                kSourceHint);
	return *qualified;
}

std::string
source_from_item(const std::string &source)
{
	std::string why;
	if (is_single_select(source, &why))
		return "(\n" + source + "\n) AS src";
	if (!why.empty())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, why, kSourceHint);
	// A relation name stored by canonical_source(): schema-qualified and quoted already, but never
	// trust stored text inside SQL: re-quote its parts.
	pg::SqlValue requoted = pg::exec_scalar(
	    "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c "
	    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = pg_catalog.to_regclass($1)",
	    {source}, true);
	if (!requoted)
		throw UserError(ERRCODE_UNDEFINED_TABLE, "the audience source \"" + source + "\" does not exist any more",
		                "Recreate it, or point the sync elsewhere with iterable_audience.alter_sync(..., source => ...).");
	return "(SELECT * FROM " + *requoted + ") AS src";
}

std::string
audience_sql(const SyncDefinition &sync)
{
	std::string raw_email = sync.email_column ? "(" + column_ref(*sync.email_column) + ")::text" : "NULL::text";
	std::string raw_user_id =
	    sync.user_id_column ? "(" + column_ref(*sync.user_id_column) + ")::text" : "NULL::text";
	std::string data_fields = "NULL::jsonb";
	if (!sync.data_fields.empty()) {
		data_fields = "jsonb_build_object(";
		bool first = true;
		for (const auto &[field, column] : sync.data_fields) {
			if (!first)
				data_fields += ", ";
			first = false;
			data_fields += pg::quote_literal(field) + "::text, " + column_ref(column);
		}
		data_fields += ")";
	}

	// Validation problem of a row, per project type (NULL = sendable).
	const std::string email_given = "nullif(btrim(c.raw_email), '') IS NOT NULL";
	const std::string user_id_given = "nullif(c.raw_user_id, '') IS NOT NULL";
	std::string problem;
	std::string missing_message;
	// Which identifiers a row needs: the project type's, except that Iterable's preferUserId lets a
	// userId alone designate (or create) a user of an email-based project, as in a hybrid one.
	const std::string identity = sync.project_type == "email" && sync.prefer_user_id ? "hybrid" : sync.project_type;
	if (identity == "email") {
		problem = "CASE WHEN c.email IS NOT NULL THEN NULL WHEN " + email_given +
		          " THEN 'invalid_email' ELSE 'missing_identifier' END";
		missing_message = "the email column is NULL or empty";
	} else if (identity == "user_id") {
		problem = "CASE WHEN c.user_id IS NOT NULL THEN NULL WHEN " + user_id_given +
		          " THEN 'invalid_user_id' ELSE 'missing_identifier' END";
		missing_message = "the userId column is NULL or empty";
	} else {
		problem = "CASE WHEN c.email IS NOT NULL OR c.user_id IS NOT NULL THEN NULL WHEN " + user_id_given +
		          " THEN 'invalid_user_id' WHEN " + email_given + " THEN 'invalid_email' ELSE 'missing_identifier' END";
		missing_message = sync.email_column && sync.user_id_column ? "both email and userId are NULL or empty"
		                  : sync.email_column                      ? "the email column is NULL or empty"
		                                                           : "the userId column is NULL or empty";
	}
	const std::string invalid_email_text =
	    "'email ' || quote_literal(c.raw_email) || ' is not a valid address'";
	const std::string invalid_user_id_text =
	    "'userId ' || quote_literal(c.raw_user_id) || ' is not valid: it must be 1 to 52 printable ASCII "
	    "characters without leading or trailing whitespace'";
	// For a refused row: why. For a sent row: what of it was left out (nothing when every identifier
	// given is valid: that test comes first, since it is cheap and nearly always true).
	std::string note = "CASE WHEN c.problem IS NULL AND (c.email IS NOT NULL OR c.raw_email IS NULL) AND "
	                   "(c.user_id IS NOT NULL OR c.raw_user_id IS NULL) THEN NULL ELSE CASE c.problem "
	                   "WHEN 'invalid_email' THEN " + invalid_email_text +
	                   " WHEN 'invalid_user_id' THEN " + invalid_user_id_text + " WHEN 'missing_identifier' THEN " +
	                   pg::quote_literal(missing_message) + " ELSE concat_ws('; ', CASE WHEN " + email_given +
	                   " AND c.email IS NULL THEN " + invalid_email_text + " || ' and was not sent' END, CASE WHEN " +
	                   user_id_given + " AND c.user_id IS NULL THEN " + invalid_user_id_text +
	                   " || ' and was not sent' END) END END";
	std::string record_key = std::string("coalesce(") + (sync.user_id_column ? "c.user_id, " : "") +
	                         "c.email, nullif(coalesce(nullif(c.raw_user_id, ''), btrim(c.raw_email)), ''))";
	std::string row_hash =
	    "iterable_audience.values_hash(coalesce(c.email, c.raw_email), coalesce(c.user_id, c.raw_user_id), "
	    "c.data_fields)";

	// Each level is fenced (OFFSET 0) so that the functions and CASEs it computes run once per row,
	// not once per reference above. The raw values are kept only for refused rows, which report them.
	return "SELECT CASE WHEN c.problem IS NOT NULL THEN c.raw_email END AS raw_email, "
	       "CASE WHEN c.problem IS NOT NULL THEN c.raw_user_id END AS raw_user_id, c.email, c.user_id, c.data_fields, "
	       "c.record_key, c.problem, nullif(" + note + ", '') AS note, " + row_hash + " AS row_hash "
	       "FROM (SELECT c.*, " + record_key + " AS record_key, x.problem FROM (SELECT a.raw_email, a.raw_user_id, "
	       "a.data_fields, iterable_audience.normalize_email(a.raw_email) AS email, "
	       "CASE WHEN iterable_audience.is_valid_user_id(a.raw_user_id) THEN a.raw_user_id END AS user_id "
	       "FROM (SELECT " +
	       raw_email + " AS raw_email, " + raw_user_id + " AS raw_user_id, " + data_fields + " AS data_fields FROM " +
	       source_from_item(sync.source) + ") a OFFSET 0) c CROSS JOIN LATERAL (SELECT " + problem +
	       " AS problem) x OFFSET 0) c";
}

std::string
plan_sql(const SyncDefinition &sync, const std::optional<std::string> &baseline, int64_t expected_keys)
{
	const std::string snapshot =
	    baseline ? *baseline
	             : "(SELECT NULL::text AS record_key, NULL::text AS email, NULL::text AS user_id, "
	               "NULL::bigint AS row_hash WHERE false)";
	const std::string reset = sync.reset_pending ? "true" : "false";
	const SyncKind &kind = sync_kind(sync.kind);

	// The audience is read once, into a materialized CTE (a tuplestore: cheaper than a table).
	// Duplicate keys: key_seen_before() flags, in that single pass, every row whose key may have come
	// before (each repeat of a key, and well under 1% of other keys); only the flagged keys are counted
	// exactly, so no hash table of every key is built. Only rows whose key is duplicated are ranked,
	// deterministically, to choose the one that is sent.
	return "WITH a AS MATERIALIZED (SELECT s.*, CASE WHEN s.problem IS NULL THEN "
	       "iterable_audience.key_seen_before(s.record_key, " + std::to_string(expected_keys) +
	       "::bigint) END AS seen_before FROM (" + audience_sql(sync) + ") s), "
	       "dup_keys AS (SELECT record_key FROM a WHERE problem IS NULL AND record_key IN "
	       "(SELECT record_key FROM a WHERE seen_before) GROUP BY record_key HAVING count(*) > 1), "
	       "ranked_dups AS (SELECT d.*, row_number() OVER (PARTITION BY d.record_key ORDER BY d.row_hash, d.email, "
	       "d.user_id, d.data_fields::text) AS dup_rank FROM a d WHERE d.problem IS NULL "
	       "AND d.record_key IN (SELECT record_key FROM dup_keys)), "
	       "winners AS (SELECT u.record_key, u.email, u.user_id, u.data_fields, u.note, u.row_hash FROM a u "
	       "WHERE u.problem IS NULL AND NOT EXISTS (SELECT 1 FROM dup_keys k WHERE k.record_key = u.record_key) "
	       "UNION ALL SELECT r.record_key, r.email, r.user_id, r.data_fields, r.note, r.row_hash FROM ranked_dups r "
	       "WHERE r.dup_rank = 1), "
	       "diff AS (SELECT CASE WHEN p.record_key IS NULL OR (" + reset +
	       " AND w.record_key IS NOT NULL) THEN 'insert' WHEN w.record_key IS NULL THEN 'delete' ELSE 'update' END AS "
	       "operation, coalesce(w.record_key, p.record_key) AS record_key, "
	       "CASE WHEN w.record_key IS NULL THEN p.email ELSE w.email END AS email, "
	       "CASE WHEN w.record_key IS NULL THEN p.user_id ELSE w.user_id END AS user_id, "
	       "w.data_fields, true AS valid, NULL::text AS error_code, w.note AS error_message, "
	       "coalesce(w.row_hash, 0) AS row_hash, p.row_hash AS prev_hash "
	       "FROM winners w FULL JOIN " + snapshot + " p ON p.record_key = w.record_key "
	       "WHERE w.record_key IS NULL OR p.record_key IS NULL OR w.row_hash <> p.row_hash OR " + reset +
	       "), refused AS ("
	       "SELECT 'insert'::text AS operation, x.record_key, coalesce(x.email, btrim(x.raw_email)) AS email, "
	       "coalesce(x.user_id, x.raw_user_id) AS user_id, x.data_fields, false AS valid, x.problem AS error_code, "
	       "x.note AS error_message, x.row_hash, NULL::bigint FROM a x WHERE x.problem IS NOT NULL "
	       "UNION ALL SELECT CASE WHEN p.record_key IS NULL THEN 'insert' ELSE 'update' END, r.record_key, r.email, "
	       "r.user_id, r.data_fields, false, 'duplicate_key', "
	       "'another audience row has the same record key; only one row per key is sent', r.row_hash, p.row_hash "
	       "FROM ranked_dups r LEFT JOIN " + snapshot + " p ON p.record_key = r.record_key WHERE r.dup_rank > 1), "
	       "everything AS (SELECT * FROM diff UNION ALL SELECT * FROM refused) "
	       // Numbered without sorting; the classes are sync_kind.hpp's (the kind says where departures go).
	       "SELECT row_number() OVER () AS seq, "
	       "CASE WHEN NOT e.valid THEN " + std::to_string(batch_class::kRefused) + " WHEN e.operation = 'delete' THEN " +
	       std::to_string(kind.departure_class()) + " ELSE " + std::to_string(batch_class::kSendable) +
	       " END AS batch_class, e.operation, CASE WHEN e.operation = 'delete' THEN " +
	       pg::quote_literal(kind.departure_action()) + " ELSE " + pg::quote_literal(kind.send_action()) +
	       " END AS action, "
	       "e.record_key, e.email, e.user_id, e.data_fields, e.valid, e.error_code, e.error_message, e.row_hash, "
	       "e.prev_hash FROM everything e";
}

std::string
refuse_oversized_sql(const SendOperation &op, const std::string &plan_table)
{
	const size_t room = op.limits.max_body_bytes - kBodyEnvelopeBytes;
	return "UPDATE " + plan_table + " SET batch_class = " + std::to_string(batch_class::kRefused) +
	       ", valid = false, error_code = 'too_large', error_message = format('the record takes %s bytes in a "
	       "request body, more than the %s bytes Iterable accepts in one request to " + std::string(op.path) +
	       "', " + record_bytes_sql() + ", " + std::to_string(op.limits.max_body_bytes) + ") WHERE batch_class = " +
	       std::to_string(op.batch_class) + " AND " + record_bytes_sql() + " > " + std::to_string(room);
}

std::string
skip_remembered_failures_sql(const SyncDefinition &sync, const std::string &plan_table)
{
	const std::string reset = sync.reset_pending ? "true" : "false";
	const std::string retry = sync.retry_failed_records ? "true" : "false";
	return "UPDATE " + plan_table + " p SET batch_class = 3 FROM iterable_audience.record_failure f WHERE f.sync_id = " +
	       std::to_string(sync.sync_id) + " AND f.record_key = p.record_key AND f.value_hash = p.row_hash AND NOT " +
	       reset + " AND (NOT " + retry + " OR NOT f.retryable)";
}

}  // namespace ia
