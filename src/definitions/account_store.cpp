#include "pg/postgres.hpp"

#include "definitions/account_store.hpp"
#include "pg/roles.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "utils/acl.h"
}

namespace ia {

using pg::UserError;

std::string
data_center_url(const std::string &data_center)
{
	return data_center == "EU" ? "https://api.eu.iterable.com" : "https://api.iterable.com";
}

namespace {

std::string
lowercase(std::string s)
{
	for (char &c : s)
		c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
	return s;
}

bool
is_loopback_host(const std::string &host)
{
	if (host == "localhost" || host == "[::1]")
		return true;
	// 127.0.0.0/8 written as a dotted quad.
	unsigned a, b, c, d;
	char tail;
	if (sscanf(host.c_str(), "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4)
		return a == 127 && b < 256 && c < 256 && d < 256;
	return false;
}

}  // namespace

std::string
normalize_base_url(const std::string &raw)
{
	const std::string hint =
	    "Use https://host[:port], or http:// only to a loopback address such as http://127.0.0.1:8080 "
	    "(the local emulator).";
	std::string url = raw;
	while (!url.empty() && url.back() == '/')
		url.pop_back();
	std::string lower = lowercase(url);
	bool https = lower.rfind("https://", 0) == 0;
	bool http = lower.rfind("http://", 0) == 0;
	if (!https && !http)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "base_url \"" + raw + "\" is not an http(s) URL", hint);
	std::string rest = url.substr(https ? 8 : 7);
	std::string authority = rest.substr(0, rest.find('/'));
	if (authority.empty() || authority.find('@') != std::string::npos ||
	    authority.find_first_of(" \t\r\n?#") != std::string::npos)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "base_url \"" + raw + "\" has no valid host", hint);
	if (url.find_first_of("?# \t\r\n") != std::string::npos)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
		                "base_url \"" + raw + "\" must not contain a query, a fragment or spaces", hint);
	std::string host = lowercase(authority);
	if (host[0] == '[') {
		host = host.substr(0, host.find(']') + 1);
	} else {
		host = host.substr(0, host.find(':'));
	}
	if (http && !is_loopback_host(host))
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
		                "base_url \"" + raw + "\" uses plain http to a host that is not loopback",
		                "The API key would travel unencrypted. " + hint);
	return url;
}

std::string
require_account_name(const char *arg_name, const std::optional<std::string> &value)
{
	if (!value || value->empty())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, std::string(arg_name) + " must not be empty or NULL",
		                "Name the account, e.g. iterable_audience.create_account('marketing', ...).");
	return *value;
}

Account
load_account(const std::string &name, bool with_key)
{
	pg::SqlResult r;
	{
		pg::AsRole as_owner(pg::extension_owner());
		r = pg::exec(with_key
		                 ? "SELECT a.account_id, a.account_name, a.data_center, a.project_type, a.base_url, "
		                   "a.owner, s.api_key FROM iterable_audience.account a "
		                   "JOIN iterable_audience.account_secret s USING (account_id) WHERE a.account_name = $1"
		                 : "SELECT a.account_id, a.account_name, a.data_center, a.project_type, a.base_url, "
		                   "a.owner, NULL FROM iterable_audience.account a WHERE a.account_name = $1",
		             {name}, true);
	}
	if (r.empty())
		throw UserError(ERRCODE_UNDEFINED_OBJECT, "account \"" + name + "\" does not exist",
		                "See SELECT account_name FROM iterable_audience.accounts; create one with "
		                "iterable_audience.create_account().");
	Account a;
	a.account_id = std::stoll(*r.at(0, 0));
	a.name = *r.at(0, 1);
	a.data_center = *r.at(0, 2);
	a.project_type = *r.at(0, 3);
	a.base_url = r.at(0, 4) ? *r.at(0, 4) : data_center_url(a.data_center);
	a.owner = static_cast<unsigned int>(std::stoul(*r.at(0, 5)));
	if (with_key)
		a.api_key = *r.at(0, 6);
	return a;
}

bool
account_usable_by(const Account &account, unsigned int role)
{
	Oid user = role;
	Oid owner = account.owner;
	if (pg::guard([&] { return superuser_arg(user) || has_privs_of_role(user, owner); }))
		return true;
	pg::AsRole as_owner(pg::extension_owner());
	pg::SqlValue granted = pg::exec_scalar(
	    "SELECT EXISTS (SELECT 1 FROM iterable_audience.account_usage u WHERE u.account_id = $1::bigint "
	    "AND pg_catalog.pg_has_role($2::oid, u.grantee, 'USAGE'))",
	    {std::to_string(account.account_id), std::to_string(role)}, true);
	return granted && *granted == "t";
}

void
check_account_access(const Account &account)
{
	if (account_usable_by(account, GetUserId()))
		return;
	throw UserError(ERRCODE_INSUFFICIENT_PRIVILEGE, "permission denied for account \"" + account.name + "\"",
	                "Its owner (" + pg::role_name(account.owner) + ") or a superuser may use it, and grant it with "
	                "iterable_audience.grant_account_usage('" + account.name + "', role_name).");
}


}  // namespace ia
