// Running statements as another role (the C equivalent of SECURITY DEFINER, as pg_cron does it).
#pragma once

#include "pg/guard.hpp"

namespace ia::pg {

// Switches the current user for the lifetime of the object. Transaction abort restores the previous
// user on its own, so unwinding through an error is safe either way.
class AsRole {
 public:
	AsRole(Oid role, int extra_security_flags = 0);
	~AsRole();
	AsRole(const AsRole &) = delete;
	AsRole &operator=(const AsRole &) = delete;

 private:
	Oid saved_user_;
	int saved_context_;
};

// Owner of the installed extension: the role whose rights reach the extension's tables.
Oid extension_owner();

bool current_user_is_superuser();
std::string role_name(Oid role);

}  // namespace ia::pg
