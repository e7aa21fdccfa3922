// Steps shared by preview_sync() and a run: reading the audience as the sync's owner into a
// temporary table, and planning against the latest snapshot.
#pragma once

#include <string>

#include "sync_definition.hpp"

namespace ia {

// Throws UserError when the role owning the sync no longer exists.
void check_owner_exists(const SyncDefinition &sync);

// CREATE TEMP TABLE <table> AS <audience_sql>, as the sync's owner with its search_path, so the
// source is read with the owner's privileges whoever triggers the run. Returns the row count.
// Requires an SPI session.
int64_t stage_audience(const SyncDefinition &sync, const std::string &table);

// The plan query over a staged audience (see plan_sql.hpp), against the latest snapshot.
std::string staged_plan_sql(const SyncDefinition &sync, const std::string &audience_table);

}  // namespace ia
