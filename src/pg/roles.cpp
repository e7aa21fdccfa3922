#include "pg/roles.hpp"

#include "pg/spi.hpp"

extern "C" {
#include "commands/extension.h"
#include "utils/acl.h"
}

namespace ia::pg {

AsRole::AsRole(Oid role, int extra_security_flags)
{
	GetUserIdAndSecContext(&saved_user_, &saved_context_);
	SetUserIdAndSecContext(role, saved_context_ | SECURITY_LOCAL_USERID_CHANGE | extra_security_flags);
}

AsRole::~AsRole()
{
	SetUserIdAndSecContext(saved_user_, saved_context_);
}

Oid
extension_owner()
{
	SqlValue owner = exec_scalar(
	    "SELECT extowner::text FROM pg_catalog.pg_extension WHERE extname = 'iterable_audience'", {}, true);
	if (!owner)
		throw UserError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "extension \"iterable_audience\" is not installed",
		                "Run CREATE EXTENSION iterable_audience in this database.");
	return static_cast<Oid>(std::stoul(*owner));
}

bool
current_user_is_superuser()
{
	Oid user = GetUserId();
	return guard([&] { return superuser_arg(user); });
}

std::string
role_name(Oid role)
{
	char *name = guard([&] { return GetUserNameFromId(role, true); });
	return name ? std::string(name) : std::string("(dropped role ") + std::to_string(role) + ")";
}

}  // namespace ia::pg
