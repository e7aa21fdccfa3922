// SQL API: normalize_email(text), is_valid_user_id(text): the contract's identifier rules, used by
// the plan query for every audience row.
#include "core/identifiers.hpp"

#include "pg/args.hpp"

IA_SQL_FUNCTION(ia_normalize_email)
{
	std::string_view raw = ia::pg::arg_text_view(fcinfo, 0);
	// The result is written in place into a text of the input's size (never longer than it).
	text *result = ia::pg::guard([&] { return static_cast<text *>(palloc(VARHDRSZ + raw.size())); });
	std::size_t length = ia::normalize_email_into(raw, VARDATA(result));
	if (length == 0) {
		pfree(result);
		PG_RETURN_NULL();
	}
	SET_VARSIZE(result, VARHDRSZ + length);
	PG_RETURN_TEXT_P(result);
}

IA_SQL_FUNCTION(ia_is_valid_user_id)
{
	PG_RETURN_BOOL(ia::is_valid_user_id(ia::pg::arg_text_view(fcinfo, 0)));
}
