// Checking a sync's mapping against its source and its account's project type.
#pragma once

#include "definitions/sync_definition.hpp"

namespace ia {

// Project-type rules of the contract (which identifier columns are required or allowed, and
// update_existing_users_only). Throws UserError.
void check_mapping_rules(const SyncDefinition &sync);

// Reads the source's columns as the current user (their privileges) and checks that every mapped
// column exists, naming a missing one and the closest existing name. Requires an SPI session and
// the sync's search_path in force.
void check_columns_exist(const SyncDefinition &sync);

}  // namespace ia
