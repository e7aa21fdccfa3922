// SQL API: lists(), create_list(). Both always ask Iterable.
#include "definitions/account_store.hpp"
#include "iterable/iterable_lists.hpp"

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

}  // namespace

IA_SQL_FUNCTION(ia_lists)
{
	ia::Account account = usable_account(fcinfo);
	std::vector<ia::ListInfo> lists = ia::fetch_lists(account, "list Iterable lists");

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
	int64_t list_id = ia::create_iterable_list(account, *name, description, "create a list");
	PG_RETURN_INT64(list_id);
}
