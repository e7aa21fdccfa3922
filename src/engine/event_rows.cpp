#include "core/event_batches.hpp"
#include "engine/event_rows.hpp"

namespace ia {

namespace {

void
set_value(EventValues &v, const std::string &field, std::optional<std::string> value)
{
	static const std::vector<std::pair<const char *, std::optional<std::string> EventValues::*>> kMembers = {
	    {"eventName", &EventValues::event_name}, {"email", &EventValues::email}, {"userId", &EventValues::user_id},
	    {"id", &EventValues::id}, {"createdAt", &EventValues::created_at}, {"dataFields", &EventValues::data_fields},
	    {"campaignId", &EventValues::campaign_id}, {"templateId", &EventValues::template_id},
	    {"items", &EventValues::items}, {"total", &EventValues::total}, {"token", &EventValues::token},
	    {"platform", &EventValues::platform}, {"applicationName", &EventValues::application_name},
	    {"browserToken", &EventValues::browser_token}, {"currentEmail", &EventValues::current_email},
	    {"currentUserId", &EventValues::current_user_id}, {"newEmail", &EventValues::new_email}};
	for (const auto &[name, member] : kMembers)
		if (field == name)
			v.*member = std::move(value);
}

}  // namespace

EventBuildOptions
event_build_options(const SyncDefinition &sync, const EventSyncDefinition &events)
{
	EventBuildOptions options;
	options.kind = events.kind;
	options.project_type = sync.project_type;
	options.sync_id = sync.sync_id;
	options.event_name = events.event_name;
	return options;
}

BuiltEvent
build_row(const EventBuildOptions &options, const SyncDefinition &sync, const EventSyncDefinition &events,
          const CursorRow &row)
{
	EventValues values;
	for (size_t i = 0; i < events.fields.size(); i++)
		set_value(values, events.fields[i].first, row.fields[i]);
	for (size_t i = 0; i < sync.data_fields.size(); i++)
		values.extra_data_fields.emplace_back(sync.data_fields[i].first, row.data_fields[i]);
	BuiltEvent built = build_event(options, values, row.cursor, row.discriminator);
	if (built.ok() && (events.kind == EventKind::Track
	                       ? TrackBulkBatcher::single_body_bytes(built.json) > kDefaultMaxBodyBytes
	                       : !body_fits(built.json))) {
		built.error_code = "too_large";
		built.error_message = "the record's request is over Iterable's body cap of " +
		                      std::to_string(kDefaultMaxBodyBytes) + " bytes";
	}
	return built;
}

}  // namespace ia
