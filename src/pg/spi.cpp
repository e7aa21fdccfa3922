#include "pg/spi.hpp"

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

// Copy one cell of SPI_tuptable into a C++ string (the palloc'd C string dies with the context).
SqlValue
cell(int row, int col)
{
	char *text = guard([&] { return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col); });
	if (text == nullptr)
		return std::nullopt;
	std::string value(text);
	guard([&] { pfree(text); });
	return value;
}

}  // namespace

SqlResult
exec(const char *sql, const std::vector<SqlValue> &params, bool read_only)
{
	const int nargs = static_cast<int>(params.size());
	std::vector<Oid> types(nargs, TEXTOID);
	std::vector<Datum> values(nargs);
	std::vector<char> nulls(nargs, ' ');
	for (int i = 0; i < nargs; i++) {
		if (!params[i]) {
			nulls[i] = 'n';
			continue;
		}
		const char *text = params[i]->c_str();
		values[i] = guard([&] { return CStringGetTextDatum(text); });
	}
	int rc = guard([&] {
		return SPI_execute_with_args(sql, nargs, types.data(), values.data(), nulls.data(), read_only, 0);
	});
	if (rc < 0)
		throw UserError(ERRCODE_INTERNAL_ERROR, std::string("SPI failed: ") + SPI_result_code_string(rc));

	SqlResult result;
	result.processed = SPI_processed;
	if (SPI_tuptable != nullptr) {
		const int ncols = SPI_tuptable->tupdesc->natts;
		result.rows.reserve(SPI_processed);
		for (uint64 r = 0; r < SPI_processed; r++) {
			SqlRow row;
			row.reserve(ncols);
			for (int c = 1; c <= ncols; c++)
				row.push_back(cell(static_cast<int>(r), c));
			result.rows.push_back(std::move(row));
		}
		guard([] { SPI_freetuptable(SPI_tuptable); });
	}
	return result;
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

}  // namespace ia::pg
