#include <cmath>
#include <ctime>

#include "core/list_members.hpp"
#include "iterable/iterable_call.hpp"
#include "iterable/list_read.hpp"
#include "iterable/list_read_pacing.hpp"

#include "pg/guard.hpp"

namespace ia {

using pg::UserError;

namespace {

// "42 s (after 02:31:07 UTC)"
std::string
retry_when(double wait_seconds)
{
	long seconds = std::max(1L, static_cast<long>(std::ceil(wait_seconds)));
	std::time_t at = std::time(nullptr) + seconds;
	std::tm tm{};
	gmtime_r(&at, &tm);
	char clock[16];
	std::strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
	return std::to_string(seconds) + " s (after " + clock + " UTC)";
}

}  // namespace

std::vector<std::string>
fetch_list_members(const Account &account, int64_t list_id, bool prefer_user_id, const std::string &sync_name)
{
	const uint32_t database = MyDatabaseId;
	double wait = list_read_pacing::take(database, account.account_id);
	if (wait > 0)
		throw UserError(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
		                "Iterable allows " + std::to_string(kListReadsPerWindow) +
		                    " getUsers requests a minute per project, and account \"" + account.name +
		                    "\" has made them: retry in " + retry_when(wait),
		                "check_list and repair_list read the whole list with getUsers; nothing was asked of "
		                "Iterable this time. Every session of this server using the account counts.");

	HttpOptions options = http_options_from_settings();
	options.retry.max_attempts = 1;  // a retry would spend another of the 5 a minute
	std::string path = "/api/lists/getUsers?listId=" + std::to_string(list_id) +
	                   "&preferUserId=" + (prefer_user_id ? "true" : "false");
	HttpResult result = call_iterable(iterable_request(account, "GET", path), options);
	const std::string what = "read the members of list " + std::to_string(list_id) + " (sync \"" + sync_name + "\")";
	if (!call_succeeded(result)) {
		std::string why = describe_call_failure(result);
		bool answered = result.outcome == TransportOutcome::Response;
		if (answered && result.status == 429) {
			list_read_pacing::refused(database, account.account_id);
			throw UserError(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
			                "Iterable refused to " + what + " for account \"" + account.name + "\" (" + why +
			                    "): it allows " + std::to_string(kListReadsPerWindow) +
			                    " getUsers requests a minute per project and this project's are used up; retry in " +
			                    retry_when(kListReadWindowSeconds),
			                "Another tool or server using the same Iterable project may be reading its lists too. "
			                "Until then this server asks Iterable no more.");
		}
		if (answered && result.status == 400 &&
		    (result.body.find("Invalid email list id") != std::string::npos ||
		     result.body.find("invalidListId") != std::string::npos))
			throw UserError(ERRCODE_UNDEFINED_OBJECT,
			                "list " + std::to_string(list_id) + " of sync \"" + sync_name +
			                    "\" no longer exists in the Iterable project of account \"" + account.name + "\" (" +
			                    why + ")",
			                "It was deleted in Iterable. Point the sync at a list with iterable_audience.alter_sync('" +
			                    sync_name + "', list_id => ...) or new_list_name => '...'; the next run fills it.");
		if (answered && result.status >= 500)
			throw UserError(ERRCODE_CONNECTION_FAILURE,
			                "Iterable could not " + what + " for account \"" + account.name + "\": " + why,
			                "Iterable answers 503 when reading a large list takes too long. Try again in a minute "
			                "(each try counts against the 5 getUsers requests a minute).");
		if (result.outcome == TransportOutcome::TooLarge)
			throw UserError(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
			                "could not " + what + " for account \"" + account.name + "\": " + why,
			                "getUsers answers about 25 bytes a member: raise iterable_audience.max_response_bytes "
			                "(a superuser setting) to fit the list.");
		throw_call_failure(account, what.c_str(), result);
	}
	try {
		return parse_answer(account, result.body, [](const std::string &b) { return parse_list_members(b); });
	} catch (const ResponseFormatError &e) {
		throw UserError(ERRCODE_PROTOCOL_VIOLATION,
		                "Iterable's answer to GET /api/lists/getUsers for account \"" + account.name +
		                    "\" is not in the documented shape: " + e.what(),
		                "Check that base_url points at Iterable's API (or the emulator), not at another service.");
	}
}

}  // namespace ia
