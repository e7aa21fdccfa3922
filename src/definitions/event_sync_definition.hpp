// The event columns of a sync of kind 'events' (create_event_sync), and their checks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/event_bodies.hpp"
#include "definitions/sync_definition.hpp"

namespace ia {

struct EventSyncDefinition {
	EventKind kind = EventKind::Track;
	std::vector<std::pair<std::string, std::string>> fields;  // Iterable request field -> source column
	std::optional<std::string> event_name;
	std::string cursor_column;
	std::string cursor_type;  // 'smallint' | 'integer' | 'bigint' | 'numeric' | 'timestamptz'
	std::string start_from = "beginning";
	std::optional<int64_t> max_events_per_run;
};

// Parses the `fields` argument ({"iterableField": "column"}) and checks it against the kind: a field
// not valid for the kind, a required one missing (eventName for track unless event_name is given).
// Throws UserError naming the fix.
std::vector<std::pair<std::string, std::string>> parse_event_fields(EventKind kind, const std::string &json,
                                                                    bool has_event_name);

// The type of the cursor column in the source, one of EventSyncDefinition::cursor_type's; throws
// UserError when the column does not exist or is not orderable as a cursor. Also checks that every
// mapped column exists. Requires an SPI session, as the caller, with the sync's search_path.
std::string check_event_columns(const SyncDefinition &sync, const EventSyncDefinition &events);

// alter_sync of an event sync: its stored event columns still hold against the (maybe new) source,
// and nothing of another kind was given (email_column, user_id_column). Requires an SPI session, as
// the caller, with the sync's search_path.
void check_altered_event_sync(const SyncDefinition &sync);

// Loads the event columns of a sync. Requires an SPI session.
EventSyncDefinition load_event_definition(int64_t sync_id);

}  // namespace ia
