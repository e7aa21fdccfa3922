#include <nlohmann/json.hpp>

#include "definitions/sync_definition.hpp"
#include "core/iterable_json.hpp"

#include "pg/roles.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "utils/acl.h"
}

namespace ia {

using pg::UserError;

namespace {

const char *const kSelectSync =
    "SELECT s.sync_id, s.sync_name, s.owner, s.account_id, a.account_name, a.project_type, s.source, "
    "s.source_search_path, s.list_id, s.email_column, s.user_id_column, s.data_fields::text, "
    "s.update_existing_users_only, s.campaign_id, s.channel_unsubscribe, s.schedule, s.paused, "
    "s.retain_sync_logs, s.sync_log_retention_days, s.snapshot_retention, s.retry_failed_records, "
    "s.max_removal_fraction, s.reset_pending, ";
const char *const kSelectKinds = "s.kind, s.merge_nested_objects, s.prefer_user_id ";
// Before ALTER EXTENSION iterable_audience UPDATE to 0.2.0 every sync is a list sync.
const char *const kSelectNoKinds = "'list', false, false ";
const char *const kFromSync = "FROM iterable_audience.sync s JOIN iterable_audience.account a USING (account_id) ";

bool
is_true(const pg::SqlValue &v)
{
	return v && *v == "t";
}

SyncDefinition
from_row(const pg::SqlRow &r)
{
	SyncDefinition s;
	s.sync_id = std::stoll(*r[0]);
	s.name = *r[1];
	s.owner = static_cast<unsigned int>(std::stoul(*r[2]));
	s.account_id = std::stoll(*r[3]);
	s.account_name = *r[4];
	s.project_type = *r[5];
	s.source = *r[6];
	s.search_path = *r[7];
	s.list_id = r[8] ? std::stoll(*r[8]) : 0;
	s.email_column = r[9];
	s.user_id_column = r[10];
	if (r[11])
		s.data_fields = parse_data_fields_mapping(*r[11]);
	s.update_existing_users_only = is_true(r[12]);
	if (r[13])
		s.campaign_id = std::stoll(*r[13]);
	s.channel_unsubscribe = is_true(r[14]);
	s.schedule = *r[15];
	s.paused = is_true(r[16]);
	s.retain_sync_logs = is_true(r[17]);
	s.sync_log_retention_days = std::stoi(*r[18]);
	s.snapshot_retention = std::stoi(*r[19]);
	s.retry_failed_records = is_true(r[20]);
	s.max_removal_fraction = std::stod(*r[21]);
	s.reset_pending = is_true(r[22]);
	s.kind = *r[23];
	s.merge_nested_objects = is_true(r[24]);
	s.prefer_user_id = is_true(r[25]);
	return s;
}

SyncDefinition
load_where(const std::string &where, const std::string &value, const std::string &what)
{
	pg::SqlResult r;
	{
		pg::AsRole as_owner(pg::extension_owner());
		r = pg::exec((std::string(kSelectSync) + (sync_kinds_installed() ? kSelectKinds : kSelectNoKinds) + kFromSync +
		              where)
		                 .c_str(),
		             {value}, true);
	}
	if (r.empty())
		throw UserError(ERRCODE_UNDEFINED_OBJECT, "sync " + what + " does not exist",
		                "See SELECT sync_name FROM iterable_audience.syncs; create one with "
		                "iterable_audience.create_sync().");
	return from_row(r.rows[0]);
}

}  // namespace

bool
sync_kinds_installed()
{
	pg::SqlValue v = pg::exec_scalar("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = "
	                                 "'iterable_audience.sync'::regclass AND attname = 'kind' AND NOT attisdropped)",
	                                 {}, true);
	return v && *v == "t";
}

SyncDefinition
load_sync(const std::string &name)
{
	return load_where("WHERE s.sync_name = $1", name, "\"" + name + "\"");
}

SyncDefinition
load_sync_by_id(int64_t sync_id)
{
	return load_where("WHERE s.sync_id = $1::bigint", std::to_string(sync_id), std::to_string(sync_id));
}

void
check_sync_access(const SyncDefinition &sync)
{
	Oid user = GetUserId();
	Oid owner = sync.owner;
	bool member = pg::guard([&] { return has_privs_of_role(user, owner); });
	if (member)
		return;
	throw UserError(ERRCODE_INSUFFICIENT_PRIVILEGE, "permission denied for sync \"" + sync.name + "\"",
	                "Only its owner (" + pg::role_name(sync.owner) + "), members of that role, or a superuser may "
	                "use this sync.");
}

std::vector<std::pair<std::string, std::string>>
parse_data_fields_mapping(const std::string &json)
{
	const std::string hint = "Pass a JSON object mapping Iterable field names to source columns, e.g. "
	                         "'{\"firstName\": \"first_name\", \"plan\": \"plan\"}'::jsonb.";
	nlohmann::json doc = nlohmann::json::parse(json, nullptr, false);
	if (doc.is_discarded() || !doc.is_object())
		throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "data_fields must be a JSON object", hint);
	std::vector<std::pair<std::string, std::string>> fields;
	for (auto it = doc.begin(); it != doc.end(); ++it) {
		if (it.key().empty())
			throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "data_fields has an empty field name", hint);
		if (it.key() == "email" || it.key() == "userId")
			throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
			                "data_fields must not map \"" + it.key() + "\"",
			                "Map identifiers with email_column and user_id_column instead.");
		if (!it.value().is_string() || it.value().get<std::string>().empty())
			throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
			                "data_fields.\"" + it.key() + "\" must name a source column as a string", hint);
		fields.emplace_back(it.key(), it.value().get<std::string>());
	}
	return fields;
}

std::string
data_fields_mapping_json(const std::vector<std::pair<std::string, std::string>> &fields)
{
	std::string json = "{";
	for (const auto &[field, column] : fields) {
		if (json.size() > 1)
			json += ",";
		append_json_string(json, field);
		json += ":";
		append_json_string(json, column);
	}
	return json + "}";
}

std::optional<std::string>
latest_snapshot_table(int64_t sync_id)
{
	pg::AsRole as_owner(pg::extension_owner());
	pg::SqlValue name = pg::exec_scalar(
	    "SELECT format('iterable_audience_snapshots.%I', table_name) FROM iterable_audience.snapshot n "
	    "WHERE n.sync_id = $1::bigint AND n.filled AND to_regclass(format('iterable_audience_snapshots.%I', table_name)) IS NOT NULL "
	    "ORDER BY run_id DESC LIMIT 1",
	    {std::to_string(sync_id)}, true);
	return name;
}

}  // namespace ia
