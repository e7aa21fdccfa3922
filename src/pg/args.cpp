#include "pg/args.hpp"

namespace ia::pg {

std::optional<std::string>
arg_text(FunctionCallInfo fcinfo, int n)
{
	if (PG_NARGS() <= n || PG_ARGISNULL(n))
		return std::nullopt;
	Datum d = PG_GETARG_DATUM(n);
	char *s = guard([&] { return TextDatumGetCString(d); });
	std::string value(s);
	guard([&] { pfree(s); });
	return value;
}

std::string_view
arg_text_view(FunctionCallInfo fcinfo, int n)
{
	Datum d = PG_GETARG_DATUM(n);
	text *t = guard([&] { return DatumGetTextPP(d); });
	return std::string_view(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

std::optional<int64_t>
arg_int64(FunctionCallInfo fcinfo, int n)
{
	if (PG_NARGS() <= n || PG_ARGISNULL(n))
		return std::nullopt;
	return PG_GETARG_INT64(n);
}

std::optional<int32_t>
arg_int32(FunctionCallInfo fcinfo, int n)
{
	if (PG_NARGS() <= n || PG_ARGISNULL(n))
		return std::nullopt;
	return PG_GETARG_INT32(n);
}

std::optional<bool>
arg_bool(FunctionCallInfo fcinfo, int n)
{
	if (PG_NARGS() <= n || PG_ARGISNULL(n))
		return std::nullopt;
	return PG_GETARG_BOOL(n);
}

std::optional<double>
arg_float4(FunctionCallInfo fcinfo, int n)
{
	if (PG_NARGS() <= n || PG_ARGISNULL(n))
		return std::nullopt;
	return PG_GETARG_FLOAT4(n);
}

Datum
text_datum(const std::string &value)
{
	return guard([&] { return PointerGetDatum(cstring_to_text_with_len(value.data(), static_cast<int>(value.size()))); });
}

TimestampTz
timestamptz_from_unix_ms(int64_t ms)
{
	return ms * 1000 - static_cast<int64_t>(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

}  // namespace ia::pg

extern "C" {
#include "utils/jsonb.h"
}

namespace ia::pg {

std::optional<std::string>
arg_jsonb_text(FunctionCallInfo fcinfo, int n)
{
	if (PG_NARGS() <= n || PG_ARGISNULL(n))
		return std::nullopt;
	Datum d = PG_GETARG_DATUM(n);
	char *s = guard([&] { return DatumGetCString(DirectFunctionCall1(jsonb_out, d)); });
	std::string value(s);
	guard([&] { pfree(s); });
	return value;
}

}  // namespace ia::pg
