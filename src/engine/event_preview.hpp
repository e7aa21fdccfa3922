// preview_sync() of an event sync (engine/event_preview.cpp).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "definitions/sync_definition.hpp"

namespace ia {

struct EventPreviewRow {
	std::string action, record_key;
	std::optional<std::string> email, user_id, request, error_code, error_message;
	bool valid = true;
};

// Calls emit for each row the next run would send or refuse, in its order. Requires SPI, in the
// caller's transaction; changes nothing.
void preview_event_sync(const SyncDefinition &sync, const std::function<void(const EventPreviewRow &)> &emit);

}  // namespace ia
