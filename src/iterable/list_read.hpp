// Reading a list's members back from Iterable (GET /api/lists/getUsers), paced to Iterable's 5
// requests a minute per project (list_read_pacing.hpp). Every refusal is a UserError that says what
// happened and when to try again, naming the account but never the key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "definitions/account_store.hpp"

namespace ia {

// The identifiers getUsers answers for the list, one per member (core/list_members.hpp). One
// attempt, never retried: each attempt counts against the 5 a minute. `sync_name` is only for the
// error texts.
std::vector<std::string> fetch_list_members(const Account &account, int64_t list_id, bool prefer_user_id,
                                            const std::string &sync_name);

}  // namespace ia
