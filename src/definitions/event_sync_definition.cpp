#include <algorithm>

#include <nlohmann/json.hpp>

#include "definitions/event_sync_definition.hpp"
#include "engine/plan_sql.hpp"

#include "pg/roles.hpp"
#include "pg/spi.hpp"

namespace ia {

using pg::UserError;

namespace {

std::string
joined(const std::vector<std::string_view> &names)
{
	std::string text;
	for (std::string_view n : names)
		text += (text.empty() ? "" : ", ") + std::string(n);
	return text;
}

}  // namespace

std::vector<std::pair<std::string, std::string>>
parse_event_fields(EventKind kind, const std::string &json, bool has_event_name)
{
	const std::string kind_name(event_kind_name(kind));
	nlohmann::json doc = nlohmann::json::parse(json, nullptr, false);
	if (doc.is_discarded() || !doc.is_object())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "fields must be a JSON object",
		                "Map Iterable request fields to source columns, e.g. "
		                "'{\"eventName\": \"event\", \"userId\": \"user_id\", \"createdAt\": \"ts\"}'.");
	const std::vector<std::string_view> &valid = event_kind_fields(kind);
	std::vector<std::pair<std::string, std::string>> fields;
	for (auto it = doc.begin(); it != doc.end(); ++it) {
		if (std::find(valid.begin(), valid.end(), it.key()) == valid.end())
			throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
			                "field \"" + it.key() + "\" is not valid for kind '" + kind_name + "'",
			                "The fields of kind '" + kind_name + "' are: " + joined(valid) +
			                    " (Iterable's own request field names; single columns go in data_fields).");
		if (!it.value().is_string() || it.value().get<std::string>().empty())
			throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
			                "field \"" + it.key() + "\" must name a source column (a non-empty string)");
		fields.emplace_back(it.key(), it.value().get<std::string>());
	}
	for (std::string_view required : event_kind_required_fields(kind)) {
		bool mapped = std::any_of(fields.begin(), fields.end(), [&](const auto &f) { return f.first == required; });
		if (mapped || (required == "eventName" && has_event_name))
			continue;
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
		                "kind '" + kind_name + "' needs the field \"" + std::string(required) + "\"",
		                required == "eventName"
		                    ? std::string("Map the column holding the event's name, fields => '{\"eventName\": "
		                                  "\"event\", ...}', or give one name for all with event_name => '...'.")
		                    : "Map it to a source column in fields, e.g. fields => '{\"" + std::string(required) +
		                          "\": \"column\", ...}'.");
	}
	return fields;
}

std::string
check_event_columns(const SyncDefinition &sync, const EventSyncDefinition &events)
{

	// The source's columns and types, as the caller reads it (a SELECT: described with LIMIT 0).
	std::vector<std::pair<std::string, std::string>> columns;
	std::string probe = "SELECT * FROM " + source_from_item(sync.source) + " LIMIT 0";
	pg::guard([&] {
		if (SPI_execute(probe.c_str(), true, 0) < 0)
			elog(ERROR, "could not read the source's columns");
		TupleDesc desc = SPI_tuptable->tupdesc;
		for (int i = 0; i < desc->natts; i++) {
			Form_pg_attribute attr = TupleDescAttr(desc, i);
			if (attr->attisdropped)
				continue;
			char *type = format_type_be(attr->atttypid);
			columns.emplace_back(NameStr(attr->attname), type);
		}
	});
	std::string all;
	for (const auto &c : columns)
		all += (all.empty() ? "" : ", ") + c.first + " " + c.second;
	auto find = [&](const std::string &name) -> const std::pair<std::string, std::string> * {
		for (const auto &c : columns)
			if (c.first == name)
				return &c;
		return nullptr;
	};
	const auto *cursor = find(events.cursor_column);
	if (!cursor)
		throw UserError(ERRCODE_UNDEFINED_COLUMN,
		                "cursor column \"" + events.cursor_column + "\" does not exist in the source",
		                "Name a column that grows with each new row (integer, numeric or timestamptz). The source "
		                "has: " + all + ".");
	static const std::vector<std::pair<std::string, std::string>> kOrderable = {
	    {"smallint", "smallint"}, {"integer", "integer"}, {"bigint", "bigint"}, {"numeric", "numeric"},
	    {"timestamp with time zone", "timestamptz"}};
	std::string type;
	for (const auto &[shown, stored] : kOrderable)
		if (cursor->second == shown)
			type = stored;
	if (type.empty())
		throw UserError(ERRCODE_DATATYPE_MISMATCH,
		                "cursor column \"" + events.cursor_column + "\" is of type " + cursor->second +
		                    ", which cannot serve as a cursor",
		                "The cursor must be an integer, numeric or timestamptz column assigned by the database when "
		                "the row is inserted (a sequence, or now()); cast it in a SELECT source, e.g. "
		                "ts::timestamptz AS ts (a timestamp without time zone is ambiguous).");
	for (const auto &[field, column] : events.fields)
		if (!find(column))
			throw UserError(ERRCODE_UNDEFINED_COLUMN,
			                "column \"" + column + "\" (fields." + field + ") does not exist in the source",
			                "The source has: " + all + ".");
	for (const auto &[field, column] : sync.data_fields)
		if (!find(column))
			throw UserError(ERRCODE_UNDEFINED_COLUMN,
			                "column \"" + column + "\" (data_fields." + field + ") does not exist in the source",
			                "The source has: " + all + ".");
	return type;
}

void
check_altered_event_sync(const SyncDefinition &sync)
{
	if (sync.email_column || sync.user_id_column)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
		                std::string(sync.email_column ? "email_column" : "user_id_column") +
		                    " does not apply to event sync \"" + sync.name + "\"",
		                "An event sync maps its identifiers in fields (email, userId, currentEmail, ...); to change "
		                "them, drop the sync and create it again with create_event_sync().");
	EventSyncDefinition events = load_event_definition(sync.sync_id);
	std::string type = check_event_columns(sync, events);
	if (type != events.cursor_type)
		throw UserError(ERRCODE_DATATYPE_MISMATCH,
		                "the cursor column \"" + events.cursor_column + "\" of the new source is of type " + type +
		                    ", not " + events.cursor_type + " as when the sync was created",
		                "Cast it in the source to " + events.cursor_type + ", or create a new event sync.");
}

EventSyncDefinition
load_event_definition(int64_t sync_id)
{
	pg::SqlResult r;
	{
		pg::AsRole as_owner(pg::extension_owner());
		r = pg::exec("SELECT event_kind, event_fields::text, event_name, cursor_column, cursor_type, start_from, "
		             "max_events_per_run FROM iterable_audience.sync WHERE sync_id = $1::bigint AND kind = 'events'",
		             {std::to_string(sync_id)}, true);
	}
	if (r.empty())
		throw UserError(ERRCODE_UNDEFINED_OBJECT, "sync " + std::to_string(sync_id) + " is not an event sync");
	EventSyncDefinition e;
	e.kind = *parse_event_kind(*r.at(0, 0));
	e.event_name = r.at(0, 2);
	e.fields = parse_event_fields(e.kind, r.at(0, 1).value_or("{}"), e.event_name.has_value());
	e.cursor_column = *r.at(0, 3);
	e.cursor_type = *r.at(0, 4);
	e.start_from = r.at(0, 5).value_or("beginning");
	if (r.at(0, 6))
		e.max_events_per_run = std::stoll(*r.at(0, 6));
	return e;
}

}  // namespace ia
