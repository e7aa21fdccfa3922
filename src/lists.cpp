// SQL API: lists(), create_list(). Both always ask Iterable.
#include "account_store.hpp"
#include "core/iterable_json.hpp"
#include "iterable_call.hpp"

#include "pg/args.hpp"
#include "pg/spi.hpp"

using ia::pg::UserError;

namespace {

ia::Account
usable_account(FunctionCallInfo fcinfo)
{
	std::string name = ia::require_account_name("account_name", ia::pg::arg_text(fcinfo, 0));
	ia::pg::SpiSession spi;
	ia::Account account = ia::load_account(name, true);
	ia::check_account_access(account);
	spi.finish();
	return account;
}

template <typename T, typename Parse>
T
parse_or_explain(const ia::Account &account, const char *what, const std::string &body, Parse parse)
{
	try {
		return parse(body);
	} catch (const ia::ResponseFormatError &e) {
		throw UserError(ERRCODE_PROTOCOL_VIOLATION,
		                std::string("Iterable's answer to ") + what + " for account \"" + account.name +
		                    "\" is not in the documented shape: " + e.what(),
		                "Check that base_url points at Iterable's API (or the emulator), not at another service.");
	}
}

}  // namespace

IA_SQL_FUNCTION(ia_lists)
{
	ia::Account account = usable_account(fcinfo);
	ia::HttpResult result =
	    ia::call_iterable(ia::iterable_request(account, "GET", "/api/lists"), ia::http_options_from_settings());
	if (!ia::call_succeeded(result))
		ia::throw_call_failure(account, "list Iterable lists", result);
	std::vector<ia::ListInfo> lists = parse_or_explain<std::vector<ia::ListInfo>>(
	    account, "GET /api/lists", result.body, [](const std::string &b) { return ia::parse_lists_response(b); });

	ia::pg::guard([&] { InitMaterializedSRF(fcinfo, 0); });
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	for (const ia::ListInfo &list : lists) {
		Datum values[5];
		bool nulls[5] = {false, false, false, false, false};
		values[0] = Int64GetDatum(list.id);
		values[1] = ia::pg::text_datum(list.name);
		values[2] = ia::pg::text_datum(list.list_type);
		values[3] = TimestampTzGetDatum(ia::pg::timestamptz_from_unix_ms(list.created_at_ms));
		if (list.description)
			values[4] = ia::pg::text_datum(*list.description);
		else
			nulls[4] = true;
		ia::pg::guard([&] { tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls); });
	}
	return static_cast<Datum>(0);
}

IA_SQL_FUNCTION(ia_create_list)
{
	std::optional<std::string> name = ia::pg::arg_text(fcinfo, 1);
	if (!name || name->empty())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "list_name must not be empty or NULL",
		                "Name the new list, e.g. create_list('marketing', 'VIP customers').");
	std::optional<std::string> description = ia::pg::arg_text(fcinfo, 2);
	ia::Account account = usable_account(fcinfo);
	std::optional<std::string_view> desc_view;
	if (description)
		desc_view = *description;
	ia::HttpResult result = ia::call_iterable(
	    ia::iterable_request(account, "POST", "/api/lists", ia::build_create_list_body(*name, desc_view)),
	    ia::http_options_from_settings());
	if (!ia::call_succeeded(result))
		ia::throw_call_failure(account, "create a list", result);
	int64_t list_id = parse_or_explain<int64_t>(account, "POST /api/lists", result.body,
	                                            [](const std::string &b) { return ia::parse_create_list_response(b); });
	PG_RETURN_INT64(list_id);
}
