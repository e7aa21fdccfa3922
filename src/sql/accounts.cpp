// SQL API: create_account, alter_account, drop_account, test_account.
#include "definitions/account_store.hpp"
#include "iterable/iterable_call.hpp"

#include "pg/args.hpp"
#include "pg/roles.hpp"
#include "pg/spi.hpp"

using ia::pg::UserError;

namespace {

std::string
canonical_data_center(const std::string &value)
{
	std::string upper;
	for (char c : value)
		upper += static_cast<char>(toupper(static_cast<unsigned char>(c)));
	if (upper == "US" || upper == "EU")
		return upper;
	throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "unknown data center \"" + value + "\"",
	                "Use 'US' (api.iterable.com) or 'EU' (api.eu.iterable.com): the data center of the Iterable "
	                "project the API key belongs to.");
}

std::string
canonical_project_type(const std::string &value)
{
	std::string lower;
	for (char c : value)
		lower += static_cast<char>(tolower(static_cast<unsigned char>(c)));
	if (lower == "email" || lower == "user_id" || lower == "hybrid")
		return lower;
	throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "unknown project type \"" + value + "\"",
	                "Use 'email', 'user_id' or 'hybrid', as shown in Iterable under Project Settings.");
}

void
check_region_supports(const std::string &data_center, const std::string &project_type)
{
	if (data_center == "EU" && project_type == "email")
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
		                "Iterable has no email-based projects in its EU data center",
		                "An EU project is 'user_id' or 'hybrid'; use data_center => 'US' for an email-based project.");
}

// The key goes into an HTTP header: refuse anything that could break out of it.
std::string
checked_api_key(const std::optional<std::string> &key)
{
	if (!key || key->empty())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "api_key must not be empty or NULL",
		                "Copy a server-side API key from Iterable (Integrations > API Keys).");
	for (unsigned char c : *key)
		if (c <= 0x20 || c >= 0x7f)
			throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
			                "api_key contains whitespace or characters that are not printable ASCII",
			                "Copy the key again without surrounding spaces or line breaks.");
	return *key;
}

std::string
key_hint(const std::string &key)
{
	// At most the last 4 characters, and none of a short key.
	return key.size() >= 12 ? "..." + key.substr(key.size() - 4) : "...";
}

std::string
checked_base_url(const std::optional<std::string> &url)
{
	if (!ia::pg::current_user_is_superuser())
		throw UserError(ERRCODE_INSUFFICIENT_PRIVILEGE, "only superusers may set base_url",
		                "base_url decides where the API key is sent; ask a superuser, or leave it NULL to use the "
		                "data center's URL.");
	return ia::normalize_base_url(*url);
}

}  // namespace

IA_SQL_FUNCTION(ia_create_account)
{
	std::string name = ia::require_account_name("account_name", ia::pg::arg_text(fcinfo, 0));
	std::string key = checked_api_key(ia::pg::arg_text(fcinfo, 1));
	std::string dc = canonical_data_center(ia::pg::arg_text(fcinfo, 2).value_or("US"));
	std::string type = canonical_project_type(ia::pg::arg_text(fcinfo, 3).value_or("hybrid"));
	check_region_supports(dc, type);
	std::optional<std::string> url = ia::pg::arg_text(fcinfo, 4);
	ia::pg::SqlValue base_url;
	if (url)
		base_url = checked_base_url(url);
	Oid caller = GetUserId();

	ia::pg::SpiSession spi;
	ia::pg::AsRole as_owner(ia::pg::extension_owner());
	if (ia::pg::exec_scalar("SELECT 1 FROM iterable_audience.account WHERE account_name = $1", {name}))
		throw UserError(ERRCODE_DUPLICATE_OBJECT, "account \"" + name + "\" already exists",
		                "Choose another name, or change it with iterable_audience.alter_account().");
	ia::pg::exec("WITH a AS (INSERT INTO iterable_audience.account "
	             "(account_name, data_center, project_type, base_url, api_key_hint, owner) "
	             "VALUES ($1, $2, $3, $4, $5, $6::oid) RETURNING account_id) "
	             "INSERT INTO iterable_audience.account_secret (account_id, api_key) SELECT account_id, $7 FROM a",
	             {name, dc, type, base_url, key_hint(key), std::to_string(caller), key});
	spi.finish();
	PG_RETURN_VOID();
}

IA_SQL_FUNCTION(ia_alter_account)
{
	std::string name = ia::require_account_name("account_name", ia::pg::arg_text(fcinfo, 0));
	std::optional<std::string> key = ia::pg::arg_text(fcinfo, 1);
	std::optional<std::string> dc = ia::pg::arg_text(fcinfo, 2);
	std::optional<std::string> type = ia::pg::arg_text(fcinfo, 3);
	std::optional<std::string> url = ia::pg::arg_text(fcinfo, 4);

	ia::pg::SpiSession spi;
	ia::Account account = ia::load_account(name, false);
	ia::check_account_access(account);
	if (key)
		checked_api_key(key);
	std::string new_dc = dc ? canonical_data_center(*dc) : account.data_center;
	std::string new_type = type ? canonical_project_type(*type) : account.project_type;
	check_region_supports(new_dc, new_type);
	ia::pg::SqlValue new_url;
	bool clear_url = url && url->empty();
	if (url && !clear_url)
		new_url = checked_base_url(url);
	else if (clear_url && !ia::pg::current_user_is_superuser())
		checked_base_url(url);  // raises the superuser error

	ia::pg::AsRole as_owner(ia::pg::extension_owner());
	if (type && new_type != account.project_type) {
		ia::pg::SqlValue users = ia::pg::exec_scalar(
		    "SELECT string_agg(sync_name, ', ' ORDER BY sync_name) FROM iterable_audience.sync "
		    "WHERE account_id = $1::bigint",
		    {std::to_string(account.account_id)});
		if (users)
			throw UserError(ERRCODE_OBJECT_IN_USE,
			                "cannot change the project type of account \"" + name + "\" while syncs use it",
			                "An Iterable project's type never changes. Drop or move these syncs first: " + *users + ".");
	}
	ia::pg::exec("UPDATE iterable_audience.account SET data_center = $2, project_type = $3, "
	             "base_url = CASE WHEN $5::boolean THEN NULL WHEN $4 IS NULL THEN base_url ELSE $4 END, "
	             "api_key_hint = coalesce($6, api_key_hint), updated_at = now() WHERE account_name = $1",
	             {name, new_dc, new_type, new_url, clear_url ? "true" : "false",
	              key ? ia::pg::SqlValue(key_hint(*key)) : std::nullopt});
	if (key)
		ia::pg::exec("UPDATE iterable_audience.account_secret SET api_key = $2 WHERE account_id = $1::bigint",
		             {std::to_string(account.account_id), *key});
	spi.finish();
	PG_RETURN_VOID();
}

IA_SQL_FUNCTION(ia_drop_account)
{
	std::string name = ia::require_account_name("account_name", ia::pg::arg_text(fcinfo, 0));
	ia::pg::SpiSession spi;
	ia::Account account = ia::load_account(name, false);
	ia::check_account_access(account);
	ia::pg::AsRole as_owner(ia::pg::extension_owner());
	ia::pg::SqlValue users = ia::pg::exec_scalar(
	    "SELECT string_agg(sync_name, ', ' ORDER BY sync_name) FROM iterable_audience.sync WHERE account_id = $1::bigint",
	    {std::to_string(account.account_id)});
	if (users)
		throw UserError(ERRCODE_OBJECT_IN_USE, "account \"" + name + "\" is used by syncs: " + *users,
		                "Drop those syncs first with iterable_audience.drop_sync().");
	ia::pg::exec("DELETE FROM iterable_audience.account WHERE account_id = $1::bigint",
	             {std::to_string(account.account_id)});
	spi.finish();
	PG_RETURN_VOID();
}

IA_SQL_FUNCTION(ia_test_account)
{
	std::string name = ia::require_account_name("account_name", ia::pg::arg_text(fcinfo, 0));
	ia::pg::SpiSession spi;
	ia::Account account = ia::load_account(name, true);
	ia::check_account_access(account);
	spi.finish();
	ia::HttpResult result =
	    ia::call_iterable(ia::iterable_request(account, "GET", "/api/lists"), ia::http_options_from_settings());
	std::string answer = ia::call_succeeded(result) ? "ok" : ia::describe_call_failure(result);
	PG_RETURN_DATUM(ia::pg::text_datum(answer));
}
