#include "iterable/iterable_call.hpp"
#include "iterable/iterable_lists.hpp"

#include "pg/guard.hpp"

namespace ia {

namespace {

template <typename T, typename Parse>
T
parse_or_explain(const Account &account, const char *endpoint, const std::string &body, Parse parse)
{
	try {
		return parse_answer(account, body, parse);
	} catch (const ResponseFormatError &e) {
		throw pg::UserError(ERRCODE_PROTOCOL_VIOLATION,
		                    std::string("Iterable's answer to ") + endpoint + " for account \"" + account.name +
		                        "\" is not in the documented shape: " + e.what(),
		                    "Check that base_url points at Iterable's API (or the emulator), not at another service.");
	}
}

}  // namespace

std::vector<ListInfo>
fetch_lists(const Account &account, const char *what)
{
	HttpResult result = call_iterable(iterable_request(account, "GET", "/api/lists"), http_options_from_settings());
	if (!call_succeeded(result))
		throw_call_failure(account, what, result);
	return parse_or_explain<std::vector<ListInfo>>(account, "GET /api/lists", result.body,
	                                               [](const std::string &b) { return parse_lists_response(b); });
}

int64_t
create_iterable_list(const Account &account, const std::string &name, const std::optional<std::string> &description,
                     const char *what)
{
	std::optional<std::string_view> desc;
	if (description)
		desc = *description;
	HttpResult result = call_iterable(iterable_request(account, "POST", "/api/lists", build_create_list_body(name, desc)),
	                                  http_options_from_settings());
	if (!call_succeeded(result))
		throw_call_failure(account, what, result);
	return parse_or_explain<int64_t>(account, "POST /api/lists", result.body,
	                                 [](const std::string &b) { return parse_create_list_response(b); });
}

}  // namespace ia
