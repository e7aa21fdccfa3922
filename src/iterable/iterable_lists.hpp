// Iterable's lists endpoints for an account: asking for its lists and creating one. Failures raise a
// UserError that names the account and says what to do (iterable_call.hpp), and an answer in an
// undocumented shape says so instead of surfacing as an internal error.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "definitions/account_store.hpp"
#include "core/iterable_json.hpp"

namespace ia {

// GET /api/lists. `what` completes "could not <what> for account ..." in errors.
std::vector<ListInfo> fetch_lists(const Account &account, const char *what);

// POST /api/lists; returns the new list's id.
int64_t create_iterable_list(const Account &account, const std::string &name,
                             const std::optional<std::string> &description, const char *what);

}  // namespace ia
