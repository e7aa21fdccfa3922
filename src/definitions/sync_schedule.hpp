// Schedules at the SQL surface: validation with a clear error, and the next due time.
#pragma once

#include <optional>
#include <string>

namespace ia {

// Canonical text of a valid schedule; throws UserError (with accepted examples) otherwise.
std::string checked_schedule(const std::string &text);

// Next due time after now, in Unix seconds as text ('manual' -> nullopt).
std::optional<std::string> next_run_at_text(const std::string &schedule);

}  // namespace ia
