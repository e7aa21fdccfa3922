#include "pg/spi.hpp"

extern "C" {
#include "utils/array.h"
}

namespace ia::pg {

SpiSession::SpiSession()
{
	guard([] {
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
	});
	connected_ = true;
}

void
SpiSession::finish()
{
	if (!connected_)
		return;
	connected_ = false;
	guard([] { SPI_finish(); });
}

namespace {

// Copies SPI_tuptable into C++ strings. One guard for the whole table: inside it only PostgreSQL
// calls run (no C++ object with a destructor is alive there); text values are read in place,
// others through their output function, and copied out once the guard has returned.
SqlResult
copy_tuptable()
{
	SqlResult result;
	result.processed = SPI_processed;
	if (SPI_tuptable == nullptr)
		return result;
	const int ncols = SPI_tuptable->tupdesc->natts;
	const size_t nrows = SPI_processed;
	std::vector<const char *> data(nrows * static_cast<size_t>(ncols), nullptr);
	std::vector<size_t> lengths(data.size(), 0);
	guard([&] {
		SPITupleTable *table = SPI_tuptable;
		TupleDesc desc = table->tupdesc;
		for (size_t r = 0; r < nrows; r++) {
			for (int c = 0; c < ncols; c++) {
				bool isnull;
				Datum d = SPI_getbinval(table->vals[r], desc, c + 1, &isnull);
				size_t at = r * static_cast<size_t>(ncols) + static_cast<size_t>(c);
				if (isnull)
					continue;
				Oid type = TupleDescAttr(desc, c)->atttypid;
				if (type == TEXTOID || type == VARCHAROID || type == NAMEOID) {
					if (type == NAMEOID) {
						data[at] = NameStr(*DatumGetName(d));
						lengths[at] = strlen(data[at]);
					} else {
						text *t = DatumGetTextPP(d);
						data[at] = VARDATA_ANY(t);
						lengths[at] = VARSIZE_ANY_EXHDR(t);
					}
				} else {
					Oid output;
					bool varlena;
					getTypeOutputInfo(type, &output, &varlena);
					char *out = OidOutputFunctionCall(output, d);
					data[at] = out;
					lengths[at] = strlen(out);
				}
			}
		}
	});
	result.rows.reserve(nrows);
	for (size_t r = 0; r < nrows; r++) {
		SqlRow row;
		row.reserve(ncols);
		for (int c = 0; c < ncols; c++) {
			size_t at = r * static_cast<size_t>(ncols) + static_cast<size_t>(c);
			if (data[at] == nullptr)
				row.emplace_back(std::nullopt);
			else
				row.emplace_back(std::string(data[at], lengths[at]));
		}
		result.rows.push_back(std::move(row));
	}
	guard([] { SPI_freetuptable(SPI_tuptable); });
	return result;
}

// Copies the one row of SPI_tuptable, whose columns are all text[], into one vector per column (a
// NULL array gives an empty vector). Elements are read in place in one guard, copied after it.
std::vector<std::vector<SqlValue>>
copy_array_row()
{
	struct Column {
		Datum *elements = nullptr;
		bool *nulls = nullptr;
		int count = 0;
	};
	std::vector<std::vector<SqlValue>> result;
	if (SPI_tuptable == nullptr || SPI_processed != 1)
		throw UserError(ERRCODE_INTERNAL_ERROR, "expected one row of arrays, got " + std::to_string(SPI_processed));
	const int ncols = SPI_tuptable->tupdesc->natts;
	std::vector<Column> columns(static_cast<size_t>(ncols));
	guard([&] {
		SPITupleTable *table = SPI_tuptable;
		for (int c = 0; c < ncols; c++) {
			if (TupleDescAttr(table->tupdesc, c)->atttypid != TEXTARRAYOID)
				elog(ERROR, "column %d of an array row is not text[]", c + 1);
			bool isnull;
			Datum d = SPI_getbinval(table->vals[0], table->tupdesc, c + 1, &isnull);
			if (isnull)
				continue;
			Column &column = columns[static_cast<size_t>(c)];
			deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &column.elements,
			                  &column.nulls, &column.count);
		}
	});
	result.resize(columns.size());
	for (size_t c = 0; c < columns.size(); c++) {
		const Column &column = columns[c];
		result[c].reserve(static_cast<size_t>(column.count));
		for (int i = 0; i < column.count; i++) {
			if (column.nulls[i]) {
				result[c].emplace_back(std::nullopt);
				continue;
			}
			const text *t = reinterpret_cast<const text *>(DatumGetPointer(column.elements[i]));
			result[c].emplace_back(std::string(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
		}
	}
	guard([] { SPI_freetuptable(SPI_tuptable); });
	return result;
}

struct Args {
	std::vector<Oid> types;
	std::vector<Datum> values;
	std::vector<char> nulls;
};

Args
text_args(const std::vector<SqlValue> &params)
{
	const size_t nargs = params.size();
	Args a{std::vector<Oid>(nargs, TEXTOID), std::vector<Datum>(nargs), std::vector<char>(nargs, ' ')};
	for (size_t i = 0; i < nargs; i++) {
		if (!params[i]) {
			a.nulls[i] = 'n';
			continue;
		}
		const char *text = params[i]->c_str();
		a.values[i] = guard([&] { return CStringGetTextDatum(text); });
	}
	return a;
}

}  // namespace

SqlResult
exec(const char *sql, const std::vector<SqlValue> &params, bool read_only)
{
	Args a = text_args(params);
	int rc = guard([&] {
		return SPI_execute_with_args(sql, static_cast<int>(params.size()), a.types.data(), a.values.data(),
		                             a.nulls.data(), read_only, 0);
	});
	if (rc < 0)
		throw UserError(ERRCODE_INTERNAL_ERROR, std::string("SPI failed: ") + SPI_result_code_string(rc));
	return copy_tuptable();
}

namespace {

// Runs a statement through a plan prepared on first use and kept for the life of the process.
void
run_prepared(const std::string &sql, const std::vector<SqlValue> &params)
{
	// Plans saved for the life of the process (a run's worker, which runs the same few statements
	// once per batch): parsed and planned once instead of once per batch.
	static std::unordered_map<std::string, SPIPlanPtr> plans;
	auto it = plans.find(sql);
	if (it == plans.end()) {
		std::vector<Oid> types(params.size(), TEXTOID);
		SPIPlanPtr plan = guard([&] {
			// A generic plan, made once: otherwise the plan cache may keep making a custom plan for
			// every execution (planning each batch's statements again).
			SPIPlanPtr p = SPI_prepare_cursor(sql.c_str(), static_cast<int>(types.size()), types.data(),
			                                  CURSOR_OPT_GENERIC_PLAN);
			if (p == nullptr)
				elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
			if (SPI_keepplan(p) != 0)
				elog(ERROR, "SPI_keepplan failed");
			return p;
		});
		it = plans.emplace(sql, plan).first;
	}
	Args a = text_args(params);
	SPIPlanPtr plan = it->second;
	int rc = guard([&] { return SPI_execute_plan(plan, a.values.data(), a.nulls.data(), false, 0); });
	if (rc < 0)
		throw UserError(ERRCODE_INTERNAL_ERROR, std::string("SPI failed: ") + SPI_result_code_string(rc));
}

}  // namespace

SqlResult
exec_prepared(const std::string &sql, const std::vector<SqlValue> &params)
{
	run_prepared(sql, params);
	return copy_tuptable();
}

std::vector<std::vector<SqlValue>>
exec_prepared_arrays(const std::string &sql, const std::vector<SqlValue> &params)
{
	run_prepared(sql, params);
	return copy_array_row();
}

SqlValue
exec_scalar(const char *sql, const std::vector<SqlValue> &params, bool read_only)
{
	SqlResult r = exec(sql, params, read_only);
	if (r.rows.empty() || r.rows[0].empty())
		return std::nullopt;
	return r.rows[0][0];
}

std::string
quote_identifier(const std::string &name)
{
	const char *quoted = guard([&] { return ::quote_identifier(name.c_str()); });
	return std::string(quoted);
}

std::string
quote_literal(const std::string &value)
{
	const char *quoted = guard([&] { return quote_literal_cstr(value.c_str()); });
	return std::string(quoted);
}

}  // namespace ia::pg

namespace ia::pg {

std::string
array_literal(const std::vector<SqlValue> &values)
{
	std::string out = "{";
	for (size_t i = 0; i < values.size(); i++) {
		if (i > 0)
			out += ',';
		if (!values[i]) {
			out += "NULL";
			continue;
		}
		out += '"';
		for (char c : *values[i]) {
			if (c == '"' || c == '\\')
				out += '\\';
			out += c;
		}
		out += '"';
	}
	return out + "}";
}

std::string
array_param(int n, const std::string &element_type)
{
	const std::string array_type = element_type + "[]";
	return "((SELECT $" + std::to_string(n) + "::" + array_type + ")::" + array_type + ")";
}

}  // namespace ia::pg
