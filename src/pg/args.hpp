// Reading SQL function arguments into C++ values.
#pragma once

#include "pg/guard.hpp"

namespace ia::pg {

std::optional<std::string> arg_text(FunctionCallInfo fcinfo, int n);
// A text argument that is not NULL, read in place (detoasted when needed, no copy): valid while
// the call lasts. For functions called once per row.
std::string_view arg_text_view(FunctionCallInfo fcinfo, int n);
std::optional<int64_t> arg_int64(FunctionCallInfo fcinfo, int n);
std::optional<bool> arg_bool(FunctionCallInfo fcinfo, int n);
std::optional<double> arg_float4(FunctionCallInfo fcinfo, int n);
std::optional<int32_t> arg_int32(FunctionCallInfo fcinfo, int n);

Datum text_datum(const std::string &value);

// Unix milliseconds -> timestamptz.
TimestampTz timestamptz_from_unix_ms(int64_t ms);

}  // namespace ia::pg

namespace ia::pg {
// A jsonb argument as its text form.
std::optional<std::string> arg_jsonb_text(FunctionCallInfo fcinfo, int n);
}
