// Snapshot tables (iterable_audience_snapshots.*): the list as Iterable acknowledged it, one table
// per run that changed it. Each is an extension member, so DROP EXTENSION removes it too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ia {

// Creates the snapshot table of a run as a copy of `previous` (or empty), registers it, grants the
// sync's owner SELECT on it, and returns its qualified, quoted name. Runs as the extension owner.
std::string create_snapshot_table(int64_t sync_id, const std::string &sync_name, int64_t run_id,
                                  unsigned int sync_owner, const std::optional<std::string> &previous);

// Drops all but the newest `keep` snapshot tables of a sync (keep = 0: all of them).
void drop_snapshot_tables(int64_t sync_id, int keep);

}  // namespace ia
