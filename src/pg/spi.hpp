// SPI from C++: every call goes through guard(), values cross as text.
// Statements take text parameters ($1, $2 ... cast in SQL as needed); results come back as
// optional strings (nullopt = SQL NULL). Callers own SPI_connect/SPI_finish through SpiSession.
#pragma once

#include "pg/guard.hpp"

namespace ia::pg {

using SqlValue = std::optional<std::string>;
using SqlRow = std::vector<SqlValue>;

struct SqlResult {
	std::vector<SqlRow> rows;
	uint64_t processed = 0;

	const SqlValue &at(size_t row, size_t col) const { return rows.at(row).at(col); }
	bool empty() const { return rows.empty(); }
};

// SPI_connect on construction; SPI_finish on finish() (explicitly, on the success path). When an
// exception unwinds instead, the transaction is about to abort and PostgreSQL's abort processing
// cleans SPI up, so the destructor does nothing.
class SpiSession {
 public:
	SpiSession();
	void finish();
	SpiSession(const SpiSession &) = delete;
	SpiSession &operator=(const SpiSession &) = delete;

 private:
	bool connected_ = false;
};

// Run one statement. read_only: run with the current snapshot and no writes allowed.
SqlResult exec(const char *sql, const std::vector<SqlValue> &params = {}, bool read_only = false);
inline SqlResult
exec(const std::string &sql, const std::vector<SqlValue> &params = {}, bool read_only = false)
{
	return exec(sql.c_str(), params, read_only);
}

// Run one statement through a plan prepared on first use and kept for the life of the process
// (for statements a worker runs many times; the text must not vary with the data: pass parameters).
SqlResult exec_prepared(const std::string &sql, const std::vector<SqlValue> &params = {});

// The same, for a statement that returns one row of text[] columns: each column's elements (a NULL
// array gives none). Many values in one row cost far less to return than one row per value.
std::vector<std::vector<SqlValue>> exec_prepared_arrays(const std::string &sql, const std::vector<SqlValue> &params = {});

// First column of the first row, or nullopt when there is no row or it is NULL.
SqlValue exec_scalar(const char *sql, const std::vector<SqlValue> &params = {}, bool read_only = false);

std::string quote_identifier(const std::string &name);
std::string quote_literal(const std::string &value);

}  // namespace ia::pg

namespace ia::pg {
// A PostgreSQL array literal ('{"a","b",NULL}') to pass as a text parameter cast to text[]/bigint[].
std::string array_literal(const std::vector<SqlValue> &values);

// The operand of `= ANY`/`<> ALL` for array parameter $n of element type `element_type`:
// "((SELECT $n::T[])::T[])". A text parameter cast to T[] is array_in, a stable call that a filter
// runs again for every row it scans (the sent set of an event sync holds a whole backfill); as an
// uncorrelated sub-select it runs once. The outer cast keeps the parser from reading
// `ANY ((SELECT ...))` as `ANY (subquery)`, which would compare each element with the whole array.
std::string array_param(int n, const std::string &element_type);
}
