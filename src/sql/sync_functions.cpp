// SQL API: create_sync, alter_sync, pause_sync, resume_sync, drop_sync, reset_sync.
#include "definitions/account_store.hpp"
#include "core/iterable_json.hpp"
#include "iterable/iterable_lists.hpp"
#include "engine/plan_sql.hpp"
#include "definitions/event_sync_definition.hpp"
#include "definitions/sync_columns.hpp"
#include "definitions/sync_definition.hpp"
#include "engine/sync_lock.hpp"
#include "definitions/sync_schedule.hpp"
#include "engine/source_changes.hpp"
#include "scheduler/wake.hpp"
#include "engine/snapshot_tables.hpp"

#include "pg/args.hpp"
#include "pg/guc_scope.hpp"
#include "pg/roles.hpp"
#include "pg/spi.hpp"

using ia::pg::SqlValue;
using ia::pg::UserError;

namespace {

// Argument positions shared by create_sync and alter_sync (alter_sync adds the user syncs' flags).
enum Arg {
	kSyncName, kAccountName, kSource, kListId, kNewListName, kNewListDescription, kEmailColumn, kUserIdColumn,
	kDataFields, kUpdateExistingOnly, kCampaignId, kChannelUnsubscribe, kSchedule, kRetainLogs, kLogRetentionDays,
	kSnapshotRetention, kRetryFailed, kMaxRemovalFraction, kAlterMergeNested, kAlterPreferUserId
};

// Argument positions of create_user_sync.
enum UserArg {
	kUserSyncName, kUserAccountName, kUserSource, kUserEmailColumn, kUserUserIdColumn, kUserDataFields,
	kUserMergeNested, kUserPreferUserId, kUserSchedule, kUserRetainLogs, kUserLogRetentionDays,
	kUserSnapshotRetention, kUserRetryFailed
};

// Where the arguments every kind has are, per SQL function.
struct CommonArgs {
	int email_column, user_id_column, data_fields, schedule, retain_logs, log_retention_days, snapshot_retention,
	    retry_failed;
};
const CommonArgs kListArgs{kEmailColumn, kUserIdColumn, kDataFields, kSchedule, kRetainLogs, kLogRetentionDays,
                           kSnapshotRetention, kRetryFailed};
const CommonArgs kUserArgs{kUserEmailColumn, kUserUserIdColumn, kUserDataFields, kUserSchedule, kUserRetainLogs,
                           kUserLogRetentionDays, kUserSnapshotRetention, kUserRetryFailed};

std::string
require_sync_name(FunctionCallInfo fcinfo)
{
	std::optional<std::string> name = ia::pg::arg_text(fcinfo, kSyncName);
	if (!name || name->empty())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "sync_name must not be empty or NULL",
		                "Name the sync, e.g. iterable_audience.create_sync('vip', ...).");
	return *name;
}

// Checks that the list exists in the account's Iterable project.
void
check_list_exists(const ia::Account &account, int64_t list_id)
{
	for (const ia::ListInfo &list : ia::fetch_lists(account, "check the list"))
		if (list.id == list_id)
			return;
	throw UserError(ERRCODE_UNDEFINED_OBJECT,
	                "list " + std::to_string(list_id) + " does not exist in the Iterable project of account \"" +
	                    account.name + "\"",
	                "See SELECT * FROM iterable_audience.lists('" + account.name +
	                    "'), or pass new_list_name => '...' to create one.");
}

// Resolves list_id / new_list_name into a list id (creating the list last, once all else is valid).
struct ListChoice {
	std::optional<int64_t> list_id;
	std::optional<std::string> new_name;
	std::optional<std::string> new_description;
};

ListChoice
list_choice(FunctionCallInfo fcinfo, bool required)
{
	ListChoice c{ia::pg::arg_int64(fcinfo, kListId), ia::pg::arg_text(fcinfo, kNewListName),
	             ia::pg::arg_text(fcinfo, kNewListDescription)};
	if (c.list_id && c.new_name)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "pass either list_id or new_list_name, not both",
		                "list_id names an existing Iterable list; new_list_name creates one now.");
	if (required && !c.list_id && !c.new_name)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "pass list_id (an existing list) or new_list_name (a new one)",
		                "See the account's lists with SELECT * FROM iterable_audience.lists('account').");
	if (c.new_name && c.new_name->empty())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "new_list_name must not be empty");
	if (c.list_id && *c.list_id <= 0)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "list_id must be a positive Iterable list id");
	if (!c.new_name && c.new_description)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "new_list_description goes with new_list_name");
	return c;
}

// Applies the arguments every kind has, those that are not NULL, onto a definition.
void
apply_common_arguments(FunctionCallInfo fcinfo, const CommonArgs &at, ia::SyncDefinition &s)
{
	if (auto v = ia::pg::arg_text(fcinfo, at.email_column))
		s.email_column = *v;
	if (auto v = ia::pg::arg_text(fcinfo, at.user_id_column))
		s.user_id_column = *v;
	if (auto v = ia::pg::arg_jsonb_text(fcinfo, at.data_fields))
		s.data_fields = ia::parse_data_fields_mapping(*v);
	if (auto v = ia::pg::arg_text(fcinfo, at.schedule))
		s.schedule = ia::checked_schedule(*v);
	if (auto v = ia::pg::arg_bool(fcinfo, at.retain_logs))
		s.retain_sync_logs = *v;
	if (auto v = ia::pg::arg_int32(fcinfo, at.log_retention_days))
		s.sync_log_retention_days = *v;
	if (auto v = ia::pg::arg_int32(fcinfo, at.snapshot_retention))
		s.snapshot_retention = *v;
	if (auto v = ia::pg::arg_bool(fcinfo, at.retry_failed))
		s.retry_failed_records = *v;
}

// Applies the list syncs' own arguments of create_sync/alter_sync that are not NULL; for a sync of
// another kind, any of them given is an error naming it.
void
apply_list_arguments(FunctionCallInfo fcinfo, ia::SyncDefinition &s)
{
	const bool list = s.kind == "list";
	auto list_only = [&](const char *name) {
		if (!list)
			throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
			                std::string(name) + " applies to list syncs only; sync \"" + s.name + "\" is a " + s.kind +
			                    " sync");
	};
	if (auto v = ia::pg::arg_bool(fcinfo, kUpdateExistingOnly)) {
		list_only("update_existing_users_only");
		s.update_existing_users_only = *v;
	}
	if (auto v = ia::pg::arg_int64(fcinfo, kCampaignId)) {
		list_only("campaign_id");
		s.campaign_id = *v;
	}
	if (auto v = ia::pg::arg_bool(fcinfo, kChannelUnsubscribe)) {
		list_only("channel_unsubscribe");
		s.channel_unsubscribe = *v;
	}
	if (auto v = ia::pg::arg_float4(fcinfo, kMaxRemovalFraction)) {
		list_only("max_removal_fraction");
		s.max_removal_fraction = *v;
	}
}

// The user syncs' own flags, at their positions in the calling function; not for list syncs.
void
apply_user_flags(FunctionCallInfo fcinfo, int merge_nested, int prefer_user_id, ia::SyncDefinition &s)
{
	std::optional<bool> merge = PG_NARGS() > merge_nested ? ia::pg::arg_bool(fcinfo, merge_nested) : std::nullopt;
	std::optional<bool> prefer = PG_NARGS() > prefer_user_id ? ia::pg::arg_bool(fcinfo, prefer_user_id) : std::nullopt;
	if ((merge || prefer) && s.kind != "users")
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
		                std::string(merge ? "merge_nested_objects" : "prefer_user_id") +
		                    " applies to user syncs only; sync \"" + s.name + "\" is a " + s.kind + " sync");
	if (merge)
		s.merge_nested_objects = *merge;
	if (prefer)
		s.prefer_user_id = *prefer;
}

std::string
data_fields_json(const ia::SyncDefinition &s)
{
	if (s.data_fields.empty())
		return {};
	return ia::data_fields_mapping_json(s.data_fields);
}

// The sync's columns as parameters $1..$19, and with kinds (0.2.0's tables) $20..$22.
std::vector<SqlValue>
definition_values(const ia::SyncDefinition &s, bool kinds)
{
	auto opt = [](bool has, const std::string &v) { return has ? SqlValue(v) : std::nullopt; };
	std::string fields = data_fields_json(s);
	std::vector<SqlValue> values = {s.name,
	        std::to_string(s.owner),
	        std::to_string(s.account_id),
	        s.source,
	        s.search_path,
	        opt(s.kind == "list", std::to_string(s.list_id)),
	        s.email_column,
	        s.user_id_column,
	        opt(!fields.empty(), fields),
	        s.update_existing_users_only ? "true" : "false",
	        opt(s.campaign_id.has_value(), s.campaign_id ? std::to_string(*s.campaign_id) : ""),
	        s.channel_unsubscribe ? "true" : "false",
	        s.schedule,
	        s.retain_sync_logs ? "true" : "false",
	        std::to_string(s.sync_log_retention_days),
	        std::to_string(s.snapshot_retention),
	        s.retry_failed_records ? "true" : "false",
	        std::to_string(s.max_removal_fraction),
	        ia::next_run_at_text(s.schedule)};
	if (kinds) {
		values.emplace_back(s.kind);
		values.emplace_back(s.merge_nested_objects ? "true" : "false");
		values.emplace_back(s.prefer_user_id ? "true" : "false");
	}
	return values;
}

// Validates mapping and columns (as the caller, with the sync's search_path).
void
validate_definition(const ia::SyncDefinition &s)
{
	if (s.kind == "events") {  // created by create_event_sync (event_sync_functions.cpp); altered here
		ia::pg::GucScope scope;
		scope.set("search_path", s.search_path);
		ia::check_altered_event_sync(s);
		return;
	}
	ia::check_mapping_rules(s);
	if (s.prefer_user_id && s.project_type != "email")
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
		                "prefer_user_id is only for email-based projects; account \"" + s.account_name + "\" is a " +
		                    (s.project_type == "user_id" ? "userID-based" : "hybrid") + " project",
		                "Iterable honours preferUserId only in email-based projects, where a userId alone creates "
		                "a user with a placeholder email; leave it false.");
	ia::pg::GucScope scope;
	scope.set("search_path", s.search_path);
	ia::check_columns_exist(s);
}

std::string
current_search_path()
{
	const char *value = ia::pg::guard([] { return GetConfigOption("search_path", false, false); });
	return value ? value : "";
}

// Checks a new sync of any kind against its account and source, and that its name is free.
void
prepare_new_sync(ia::SyncDefinition &s, const ia::Account &account, const std::string &source)
{
	ia::check_account_access(account);
	s.account_id = account.account_id;
	s.account_name = account.name;
	s.project_type = account.project_type;
	s.search_path = current_search_path();
	s.source = ia::canonical_source(source);
	validate_definition(s);
	ia::pg::AsRole as_owner(ia::pg::extension_owner());
	if (ia::pg::exec_scalar("SELECT 1 FROM iterable_audience.sync WHERE sync_name = $1", {s.name}))
		throw UserError(ERRCODE_DUPLICATE_OBJECT, "sync \"" + s.name + "\" already exists",
		                "Choose another name, or change it with iterable_audience.alter_sync().");
}

int64_t
insert_sync(const ia::SyncDefinition &s)
{
	ia::pg::AsRole as_owner(ia::pg::extension_owner());
	const bool kinds = ia::sync_kinds_installed();
	SqlValue id = ia::pg::exec_scalar(
	    (std::string("INSERT INTO iterable_audience.sync (sync_name, owner, account_id, source, source_search_path, "
	                 "list_id, email_column, user_id_column, data_fields, update_existing_users_only, campaign_id, "
	                 "channel_unsubscribe, schedule, retain_sync_logs, sync_log_retention_days, snapshot_retention, "
	                 "retry_failed_records, max_removal_fraction, next_run_at") +
	     (kinds ? ", kind, merge_nested_objects, prefer_user_id" : "") +
	     ") VALUES ($1, $2::oid, $3::bigint, $4, $5, $6::bigint, $7, $8, $9::jsonb, $10::boolean, $11::bigint, "
	     "$12::boolean, $13, $14::boolean, $15::integer, $16::integer, $17::boolean, $18::real, "
	     "to_timestamp($19::double precision)" + (kinds ? ", $20, $21::boolean, $22::boolean" : "") +
	     ") RETURNING sync_id")
	        .c_str(),
	    definition_values(s, kinds));
	ia::wake_scheduler_at_commit();
	return std::stoll(*id);
}

}  // namespace

IA_SQL_FUNCTION(ia_create_sync)
{
	ia::SyncDefinition s;
	s.name = require_sync_name(fcinfo);
	std::string account_name = ia::require_account_name("account_name", ia::pg::arg_text(fcinfo, kAccountName));
	std::optional<std::string> source = ia::pg::arg_text(fcinfo, kSource);
	if (!source)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "source must not be NULL",
		                "Pass a table or view name, or a SELECT statement.");
	ListChoice list = list_choice(fcinfo, true);
	s.schedule = "manual";
	apply_common_arguments(fcinfo, kListArgs, s);
	apply_list_arguments(fcinfo, s);
	s.owner = GetUserId();

	ia::pg::SpiSession spi;
	ia::Account account = ia::load_account(account_name, true);
	prepare_new_sync(s, account, *source);
	if (list.list_id) {
		check_list_exists(account, *list.list_id);
		s.list_id = *list.list_id;
	} else {
		s.list_id = ia::create_iterable_list(account, *list.new_name, list.new_description, "create the list");
	}
	int64_t id = insert_sync(s);
	spi.finish();
	PG_RETURN_INT64(id);
}

IA_SQL_FUNCTION(ia_create_user_sync)
{
	ia::SyncDefinition s;
	s.kind = "users";
	s.name = require_sync_name(fcinfo);
	std::string account_name = ia::require_account_name("account_name", ia::pg::arg_text(fcinfo, kUserAccountName));
	std::optional<std::string> source = ia::pg::arg_text(fcinfo, kUserSource);
	if (!source)
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "source must not be NULL",
		                "Pass a table or view name, or a SELECT statement, with one row per user.");
	s.schedule = "manual";
	apply_common_arguments(fcinfo, kUserArgs, s);
	apply_user_flags(fcinfo, kUserMergeNested, kUserPreferUserId, s);
	s.owner = GetUserId();

	ia::pg::SpiSession spi;
	ia::Account account = ia::load_account(account_name, true);
	prepare_new_sync(s, account, *source);
	int64_t id = insert_sync(s);
	spi.finish();
	PG_RETURN_INT64(id);
}

IA_SQL_FUNCTION(ia_alter_sync)
{
	std::string name = require_sync_name(fcinfo);
	ListChoice list = list_choice(fcinfo, false);
	ia::pg::SpiSession spi;
	ia::SyncDefinition s = ia::load_sync(name);
	ia::check_sync_access(s);
	const ia::SyncDefinition before = s;

	ia::Account account = ia::load_account(s.account_name, true);
	if ((list.list_id || list.new_name) && s.kind != "list")
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
		                "sync \"" + name + "\" is a " + s.kind + " sync: it has no list",
		                "list_id and new_list_name apply to list syncs only.");
	if (auto account_name = ia::pg::arg_text(fcinfo, kAccountName); account_name && *account_name != s.account_name) {
		account = ia::load_account(*account_name, true);
		ia::check_account_access(account);
		if (s.kind == "list" && !list.list_id && !list.new_name)
			throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
			                "moving sync \"" + name + "\" to another account needs a list of that account",
			                "Pass list_id or new_list_name together with account_name.");
		s.account_id = account.account_id;
		s.account_name = account.name;
		s.project_type = account.project_type;
	}
	if (auto source = ia::pg::arg_text(fcinfo, kSource)) {
		s.source = ia::canonical_source(*source);
		s.search_path = current_search_path();
	}
	apply_common_arguments(fcinfo, kListArgs, s);
	apply_list_arguments(fcinfo, s);
	apply_user_flags(fcinfo, kAlterMergeNested, kAlterPreferUserId, s);
	validate_definition(s);
	if (list.list_id) {
		check_list_exists(account, *list.list_id);
		s.list_id = *list.list_id;
	} else if (list.new_name) {
		s.list_id = ia::create_iterable_list(account, *list.new_name, list.new_description, "create the list");
	}
	// A list sync pointed at another list, or any sync at another project: what Iterable holds is
	// another's.
	bool list_changed = s.list_id != before.list_id || s.account_id != before.account_id;

	ia::pg::AsRole as_owner(ia::pg::extension_owner());
	ia::SyncLock lock(s.sync_id, "alter");
	const bool kinds = ia::sync_kinds_installed();
	std::vector<SqlValue> values = definition_values(s, kinds);
	values.push_back(std::to_string(s.sync_id));
	ia::pg::exec((std::string("UPDATE iterable_audience.sync SET sync_name = $1, owner = $2::oid, account_id = $3::bigint, "
	             "source = $4, source_search_path = $5, list_id = $6::bigint, email_column = $7, user_id_column = $8, "
	             "data_fields = $9::jsonb, update_existing_users_only = $10::boolean, campaign_id = $11::bigint, "
	             "channel_unsubscribe = $12::boolean, schedule = $13, retain_sync_logs = $14::boolean, "
	             "sync_log_retention_days = $15::integer, snapshot_retention = $16::integer, "
	             "retry_failed_records = $17::boolean, max_removal_fraction = $18::real, "
	             "next_run_at = CASE WHEN paused THEN NULL ELSE to_timestamp($19::double precision) END, "
	             "") + (kinds ? "kind = $20, merge_nested_objects = $21::boolean, prefer_user_id = $22::boolean, " : "") +
	             "updated_at = now() WHERE sync_id = $" + std::to_string(values.size()) + "::bigint")
	                .c_str(),
	             values);
	// Another source: its tables are watched from the next run on (any other change makes the next
	// run read the source anyway: source_watch.sync_updated_at).
	if (s.source != before.source || s.search_path != before.search_path)
		ia::forget_source_reads(s.sync_id);
	if (list_changed) {
		// The snapshots describe the old list: the new list starts empty.
		ia::drop_snapshot_tables(s.sync_id, 0);
		ia::pg::exec("DELETE FROM iterable_audience.record_failure WHERE sync_id = $1::bigint",
		             {std::to_string(s.sync_id)});
		// Nor are runs that ended before recording their snapshot to be settled into the new list's.
		ia::pg::exec("UPDATE iterable_audience.sync_runs SET settled = true WHERE sync_id = $1::bigint AND NOT settled",
		             {std::to_string(s.sync_id)});
	}
	ia::wake_scheduler_at_commit();
	spi.finish();
	PG_RETURN_VOID();
}

namespace {

ia::SyncDefinition
accessible_sync(FunctionCallInfo fcinfo)
{
	ia::SyncDefinition s = ia::load_sync(require_sync_name(fcinfo));
	ia::check_sync_access(s);
	return s;
}

}  // namespace

IA_SQL_FUNCTION(ia_pause_sync)
{
	ia::pg::SpiSession spi;
	ia::SyncDefinition s = accessible_sync(fcinfo);
	ia::pg::AsRole as_owner(ia::pg::extension_owner());
	ia::pg::exec("UPDATE iterable_audience.sync SET paused = true, next_run_at = NULL, updated_at = now() "
	             "WHERE sync_id = $1::bigint",
	             {std::to_string(s.sync_id)});
	spi.finish();
	PG_RETURN_VOID();
}

IA_SQL_FUNCTION(ia_resume_sync)
{
	ia::pg::SpiSession spi;
	ia::SyncDefinition s = accessible_sync(fcinfo);
	ia::pg::AsRole as_owner(ia::pg::extension_owner());
	ia::pg::exec("UPDATE iterable_audience.sync SET paused = false, "
	             "next_run_at = to_timestamp($2::double precision), updated_at = now() WHERE sync_id = $1::bigint",
	             {std::to_string(s.sync_id), ia::next_run_at_text(s.schedule)});
	ia::wake_scheduler_at_commit();
	spi.finish();
	PG_RETURN_VOID();
}

IA_SQL_FUNCTION(ia_drop_sync)
{
	ia::pg::SpiSession spi;
	ia::SyncDefinition s = accessible_sync(fcinfo);
	ia::pg::AsRole as_owner(ia::pg::extension_owner());
	ia::SyncLock lock(s.sync_id, "drop");
	ia::forget_source_reads(s.sync_id);
	ia::drop_snapshot_tables(s.sync_id, 0);
	ia::pg::exec("DELETE FROM iterable_audience.sync_batch WHERE sync_id = $1::bigint", {std::to_string(s.sync_id)});
	ia::pg::exec("DELETE FROM iterable_audience.sync WHERE sync_id = $1::bigint", {std::to_string(s.sync_id)});
	spi.finish();
	PG_RETURN_VOID();
}

IA_SQL_FUNCTION(ia_reset_sync)
{
	ia::pg::SpiSession spi;
	ia::SyncDefinition s = accessible_sync(fcinfo);
	ia::pg::AsRole as_owner(ia::pg::extension_owner());
	ia::SyncLock lock(s.sync_id, "reset");
	ia::pg::exec("UPDATE iterable_audience.sync SET reset_pending = true, updated_at = now() WHERE sync_id = $1::bigint",
	             {std::to_string(s.sync_id)});
	ia::pg::exec("DELETE FROM iterable_audience.record_failure WHERE sync_id = $1::bigint", {std::to_string(s.sync_id)});
	spi.finish();
	PG_RETURN_VOID();
}
