// sync_kind(): a sync's kind by name; and what the kinds' preflights share.
#include "kinds/kinds.hpp"
#include "iterable/iterable_call.hpp"

#include "pg/spi.hpp"
#include "pg/transaction.hpp"

namespace ia {

const SyncKind &
sync_kind(const std::string &kind)
{
	if (kind == list_kind().name())
		return list_kind();
	if (kind == user_kind().name())
		return user_kind();
	if (kind == event_kind().name())
		return event_kind();
	throw pg::UserError(ERRCODE_FEATURE_NOT_SUPPORTED, "syncs of kind \"" + kind + "\" are not supported by this build");
}

namespace {

// Adds a call's attempts (and its 429s) to the run's counters. Runs its own transaction.
void
count_calls(int64_t run_id, const HttpResult &result)
{
	pg::in_transaction([&] {
		pg::exec("UPDATE iterable_audience.sync_runs SET api_requests = api_requests + $2::bigint, "
		         "rate_limited = rate_limited + $3::bigint WHERE run_id = $1::bigint",
		         {std::to_string(run_id), std::to_string(result.attempts), std::to_string(result.rate_limited)});
	});
}

// The run's end when the call made before sending failed: the key refused, or Iterable unreachable.
RunEnded
preflight_failure(const Account &account, const HttpResult &result)
{
	std::string why = describe_call_failure(result);
	if (result.outcome == TransportOutcome::Response && result.status == 401)
		return RunEnded{"failed", "Iterable refused the API key of account \"" + account.name + "\" (" + why +
		                              "); nothing was sent. Set a valid server-side key with "
		                              "iterable_audience.alter_account('" + account.name + "', api_key => ...)"};
	return RunEnded{"failed", "could not reach Iterable for account \"" + account.name + "\": " + why +
	                              "; nothing was sent, the next run tries again"};
}

}  // namespace

HttpResult
check_api_key(const Account &account, int64_t run_id)
{
	HttpResult result = call_iterable(iterable_request(account, "GET", "/api/lists"), http_options_from_settings());
	count_calls(run_id, result);
	if (!call_succeeded(result))
		throw preflight_failure(account, result);
	return result;
}

}  // namespace ia
