// SQL API: create_event_sync (contract: sql-api.md "Event syncs"; design: docs/event-syncs.md).
#include "core/iterable_json.hpp"
#include "definitions/account_store.hpp"
#include "definitions/event_sync_definition.hpp"
#include "definitions/sync_schedule.hpp"
#include "engine/event_cursor.hpp"
#include "engine/plan_sql.hpp"
#include "scheduler/wake.hpp"

#include "pg/args.hpp"
#include "pg/guc_scope.hpp"
#include "pg/roles.hpp"
#include "pg/spi.hpp"

using ia::pg::SqlValue;
using ia::pg::UserError;

namespace {

enum EventArg {
	kName, kAccount, kSource, kCursorColumn, kKind, kFields, kDataFields, kEventName, kStartFrom, kMaxEvents,
	kSchedule, kRetainLogs, kLogRetentionDays, kRetryFailed
};

std::string
current_search_path()
{
	const char *value = ia::pg::guard([] { return GetConfigOption("search_path", false, false); });
	return value ? value : "";
}

}  // namespace

IA_SQL_FUNCTION(ia_create_event_sync)
{
	ia::SyncDefinition s;
	ia::EventSyncDefinition e;
	s.kind = "events";
	std::optional<std::string> name = ia::pg::arg_text(fcinfo, kName);
	if (!name || name->empty())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "sync_name must not be empty or NULL",
		                "Name the sync, e.g. iterable_audience.create_event_sync('tracks', ...).");
	s.name = *name;
	std::string account_name = ia::require_account_name("account_name", ia::pg::arg_text(fcinfo, kAccount));
	std::optional<std::string> source = ia::pg::arg_text(fcinfo, kSource);
	if (!source)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "source must not be NULL",
		                "Pass a table or view name, or a SELECT statement, with one row per event.");
	std::optional<std::string> cursor = ia::pg::arg_text(fcinfo, kCursorColumn);
	if (!cursor || cursor->empty())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "cursor_column must not be empty or NULL",
		                "Name the column that grows with each new row (a sequence or an insert timestamp).");
	e.cursor_column = *cursor;
	std::string kind_name = ia::pg::arg_text(fcinfo, kKind).value_or("track");
	std::optional<ia::EventKind> kind = ia::parse_event_kind(kind_name);
	if (!kind)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "unknown event sync kind \"" + kind_name + "\"",
		                "kind is one of 'track', 'purchase', 'cart', 'device_token', 'browser_token', 'email_change'.");
	e.kind = *kind;
	e.event_name = ia::pg::arg_text(fcinfo, kEventName);
	if (e.event_name && e.event_name->empty())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "event_name must not be empty");
	if (e.event_name && e.kind != ia::EventKind::Track)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "event_name applies to kind 'track' only");
	e.fields = ia::parse_event_fields(e.kind, ia::pg::arg_jsonb_text(fcinfo, kFields).value_or("{}"),
	                                  e.event_name.has_value());
	if (auto v = ia::pg::arg_jsonb_text(fcinfo, kDataFields))
		s.data_fields = ia::parse_data_fields_mapping(*v);
	if (!s.data_fields.empty() && (e.kind == ia::EventKind::Cart || e.kind == ia::EventKind::BrowserToken ||
	                               e.kind == ia::EventKind::EmailChange))
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
		                "data_fields does not apply to kind '" + kind_name + "': its request has no dataFields");
	e.start_from = ia::pg::arg_text(fcinfo, kStartFrom).value_or("beginning");
	if (e.start_from != "beginning" && e.start_from != "now")
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "start_from must be 'beginning' or 'now'",
		                "'beginning' sends the rows already in the source too; 'now' only those added after.");
	e.max_events_per_run = ia::pg::arg_int64(fcinfo, kMaxEvents);
	if (e.max_events_per_run && *e.max_events_per_run <= 0)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "max_events_per_run must be positive (or NULL: no limit)");
	s.schedule = ia::checked_schedule(ia::pg::arg_text(fcinfo, kSchedule).value_or("manual"));
	s.retain_sync_logs = ia::pg::arg_bool(fcinfo, kRetainLogs).value_or(true);
	s.sync_log_retention_days = ia::pg::arg_int32(fcinfo, kLogRetentionDays).value_or(30);
	if (s.sync_log_retention_days < 0)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "sync_log_retention_days must not be negative");
	s.retry_failed_records = ia::pg::arg_bool(fcinfo, kRetryFailed).value_or(true);
	s.owner = GetUserId();

	ia::pg::SpiSession spi;
	ia::Account account = ia::load_account(account_name, true);
	ia::check_account_access(account);
	s.account_id = account.account_id;
	s.account_name = account.name;
	s.project_type = account.project_type;
	s.search_path = current_search_path();
	s.source = ia::canonical_source(*source);
	{
		ia::pg::GucScope scope;
		scope.set("search_path", s.search_path);
		e.cursor_type = ia::check_event_columns(s, e);
	}
	// Where a start from 'now' begins: the largest cursor the caller sees now.
	std::optional<std::string> watermark;
	if (e.start_from == "now")
		watermark = ia::current_max_cursor(s, e);

	ia::pg::AsRole as_owner(ia::pg::extension_owner());
	if (ia::pg::exec_scalar("SELECT 1 FROM iterable_audience.sync WHERE sync_name = $1", {s.name}))
		throw UserError(ERRCODE_DUPLICATE_OBJECT, "sync \"" + s.name + "\" already exists",
		                "Choose another name, or drop it with iterable_audience.drop_sync().");
	std::string data_fields = ia::data_fields_mapping_json(s.data_fields);
	SqlValue id = ia::pg::exec_scalar(
	    "INSERT INTO iterable_audience.sync (sync_name, owner, account_id, source, source_search_path, list_id, "
	    "data_fields, schedule, retain_sync_logs, sync_log_retention_days, retry_failed_records, next_run_at, kind, "
	    "cursor_column, cursor_type, event_kind, event_fields, event_name, start_from, max_events_per_run) "
	    "VALUES ($1, $2::oid, $3::bigint, $4, $5, NULL, $6::jsonb, $7, $8::boolean, $9::integer, $10::boolean, "
	    "to_timestamp($11::double precision), 'events', $12, $13, $14, $15::jsonb, $16, $17, $18::bigint) "
	    "RETURNING sync_id",
	    {s.name, std::to_string(s.owner), std::to_string(s.account_id), s.source, s.search_path,
	     s.data_fields.empty() ? SqlValue() : SqlValue(data_fields), s.schedule, s.retain_sync_logs ? "true" : "false",
	     std::to_string(s.sync_log_retention_days), s.retry_failed_records ? "true" : "false",
	     ia::next_run_at_text(s.schedule), e.cursor_column, e.cursor_type, std::string(ia::event_kind_name(e.kind)),
	     ia::data_fields_mapping_json(e.fields), e.event_name, e.start_from,
	     e.max_events_per_run ? SqlValue(std::to_string(*e.max_events_per_run)) : SqlValue()});
	ia::pg::exec("INSERT INTO iterable_audience.event_sync_state (sync_id, watermark) VALUES ($1::bigint, $2)",
	             {id, watermark});
	ia::wake_scheduler_at_commit();
	spi.finish();
	PG_RETURN_INT64(std::stoll(*id));
}
