// SQL API: normalize_email(text), is_valid_user_id(text): the contract's identifier rules, used by
// the plan query for every audience row.
#include "core/identifiers.hpp"

#include "pg/args.hpp"

namespace {

std::string_view
text_arg_view(FunctionCallInfo fcinfo, int n)
{
	Datum d = PG_GETARG_DATUM(n);
	text *t = ia::pg::guard([&] { return DatumGetTextPP(d); });
	return std::string_view(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

}  // namespace

IA_SQL_FUNCTION(ia_normalize_email)
{
	std::optional<std::string> email = ia::normalize_email(text_arg_view(fcinfo, 0));
	if (!email)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(ia::pg::text_datum(*email));
}

IA_SQL_FUNCTION(ia_is_valid_user_id)
{
	PG_RETURN_BOOL(ia::is_valid_user_id(text_arg_view(fcinfo, 0)));
}
