// SQL API: grant_account_usage(), revoke_account_usage(): which roles besides its owner may use an
// account for lists and syncs (whose key the role still cannot read).
#include "definitions/account_store.hpp"

#include "pg/args.hpp"
#include "pg/roles.hpp"
#include "pg/spi.hpp"

using ia::pg::UserError;

namespace {

struct GrantTarget {
	ia::Account account;
	std::string role_oid;
};

GrantTarget
grant_target(FunctionCallInfo fcinfo)
{
	std::string name = ia::require_account_name("account_name", ia::pg::arg_text(fcinfo, 0));
	std::optional<std::string> role = ia::pg::arg_text(fcinfo, 1);
	if (!role || role->empty())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "role_name must not be empty or NULL");
	ia::Account account = ia::load_account(name, false);
	if (!ia::pg::current_user_is_superuser() && GetUserId() != account.owner)
		throw UserError(ERRCODE_INSUFFICIENT_PRIVILEGE,
		                "only the owner of account \"" + name + "\" or a superuser may grant or revoke its use");
	ia::pg::SqlValue oid =
	    ia::pg::exec_scalar("SELECT oid::text FROM pg_catalog.pg_roles WHERE rolname = $1", {*role}, true);
	if (!oid)
		throw UserError(ERRCODE_UNDEFINED_OBJECT, "role \"" + *role + "\" does not exist");
	return {account, *oid};
}

}  // namespace

IA_SQL_FUNCTION(ia_grant_account_usage)
{
	ia::pg::SpiSession spi;
	GrantTarget t = grant_target(fcinfo);
	ia::pg::AsRole as_owner(ia::pg::extension_owner());
	ia::pg::exec("INSERT INTO iterable_audience.account_usage (account_id, grantee) VALUES ($1::bigint, $2::oid) "
	             "ON CONFLICT DO NOTHING",
	             {std::to_string(t.account.account_id), t.role_oid});
	spi.finish();
	PG_RETURN_VOID();
}

IA_SQL_FUNCTION(ia_revoke_account_usage)
{
	ia::pg::SpiSession spi;
	GrantTarget t = grant_target(fcinfo);
	ia::pg::AsRole as_owner(ia::pg::extension_owner());
	ia::pg::exec("DELETE FROM iterable_audience.account_usage WHERE account_id = $1::bigint AND grantee = $2::oid",
	             {std::to_string(t.account.account_id), t.role_oid});
	spi.finish();
	PG_RETURN_VOID();
}
