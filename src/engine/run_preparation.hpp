// Steps shared by preview_sync() and a run: planning, as the sync's owner, into a temporary table.
#pragma once

#include <optional>
#include <string>

#include "definitions/sync_definition.hpp"

namespace ia {

// Throws UserError when the role owning the sync no longer exists.
void check_owner_exists(const SyncDefinition &sync);

// CREATE TEMP TABLE <table> AS <plan_sql>, as the sync's owner with its search_path, so the source
// is read with the owner's privileges whoever triggers the run; then, as the extension's owner, the
// records whose remembered failure says not to send them again go to batch_class 3 (only looked for
// when failures_possible). `baseline` is the latest snapshot table (qualified), if any, and
// `baseline_rows` its size (sizes the duplicate-key filter; 0 when unknown). Requires an SPI session;
// the caller has called check_owner_exists() first, before anything else done in the owner's name.
void build_plan(const SyncDefinition &sync, const std::string &table, const std::optional<std::string> &baseline,
                int64_t baseline_rows, bool failures_possible);

}  // namespace ia
