// Reading and writing accounts (iterable_audience.account and account_secret) as the extension owner.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ia {

struct Account {
	int64_t account_id = 0;
	std::string name;
	std::string data_center;   // 'US' | 'EU'
	std::string project_type;  // 'email' | 'user_id' | 'hybrid'
	std::string base_url;      // effective: the override, or the data center's URL
	std::string api_key;       // only filled by load_account(..., with_key = true)
	unsigned int owner = 0;
};

// Loads an account by name; raises a clear error when there is none. Requires an SPI session.
Account load_account(const std::string &name, bool with_key);

// Whether a role may use the account: a superuser, its owner (or a member of the owner's role), or a
// role granted usage with grant_account_usage() (or a member of it).
bool account_usable_by(const Account &account, unsigned int role);

// Throws unless the current user may use the account.
void check_account_access(const Account &account);

// Iterable's URL for a data center.
std::string data_center_url(const std::string &data_center);

// Validates a base_url override: https://, or http:// to a loopback host only. Throws UserError.
std::string normalize_base_url(const std::string &url);

// Validates the account name argument (non-NULL, non-empty). Throws UserError.
std::string require_account_name(const char *arg_name, const std::optional<std::string> &value);

}  // namespace ia
