// A sync as stored in iterable_audience.sync, loaded as the extension owner.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ia {

struct SyncDefinition {
	int64_t sync_id = 0;
	std::string name;
	std::string kind = "list";  // 'list' | 'users' | 'events' (engine/sync_kind.hpp)
	unsigned int owner = 0;
	int64_t account_id = 0;
	std::string account_name;
	std::string project_type;  // of the account: 'email' | 'user_id' | 'hybrid'
	std::string source;
	std::string search_path;   // search_path in force at create_sync, used to read the source
	int64_t list_id = 0;       // list syncs only (0 for other kinds)
	std::optional<std::string> email_column;
	std::optional<std::string> user_id_column;
	std::vector<std::pair<std::string, std::string>> data_fields;  // Iterable field -> source column
	bool update_existing_users_only = false;
	std::optional<int64_t> campaign_id;
	bool channel_unsubscribe = false;
	std::string schedule;
	bool paused = false;
	bool retain_sync_logs = true;
	int sync_log_retention_days = 30;
	int snapshot_retention = 3;
	bool retry_failed_records = true;
	double max_removal_fraction = 0.5;
	bool reset_pending = false;
	bool merge_nested_objects = false;  // user syncs: Iterable's mergeNestedObjects
	bool prefer_user_id = false;        // user syncs: Iterable's preferUserId
};

// Whether the installed schema has sync kinds (0.2.0): false between installing this library and
// ALTER EXTENSION iterable_audience UPDATE, when list syncs keep working on the 0.1.0 tables.
// Requires an SPI session.
bool sync_kinds_installed();

// Requires an SPI session. Raise a clear error when the sync does not exist.
SyncDefinition load_sync(const std::string &name);
SyncDefinition load_sync_by_id(int64_t sync_id);

// Throws unless the current user owns the sync (or is a member of its owner role) or is a superuser.
void check_sync_access(const SyncDefinition &sync);

// Parses {"iterableField": "source_column", ...}; throws UserError naming the problem.
std::vector<std::pair<std::string, std::string>> parse_data_fields_mapping(const std::string &json);
// The inverse: {"iterableField":"source_column",...} in the mapping's order ("{}" when it is empty).
std::string data_fields_mapping_json(const std::vector<std::pair<std::string, std::string>> &fields);

// The newest snapshot table of the sync (schema-qualified, quoted), if any.
std::optional<std::string> latest_snapshot_table(int64_t sync_id);

}  // namespace ia
