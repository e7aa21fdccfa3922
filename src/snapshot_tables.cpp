#include "snapshot_tables.hpp"

#include "pg/roles.hpp"
#include "pg/spi.hpp"

namespace ia {

std::string
create_snapshot_table(int64_t sync_id, const std::string &sync_name, int64_t run_id, unsigned int sync_owner,
                      const std::optional<std::string> &previous)
{
	// Readable name for analysts, unique by the run id: "<sync name>_run_<run id>" (within 63 bytes).
	std::string suffix = "_run_" + std::to_string(run_id);
	std::string table = sync_name.substr(0, 63 - suffix.size());
	while (!table.empty() && (static_cast<unsigned char>(table.back()) & 0xC0) == 0x80)
		table.pop_back();  // do not cut a UTF-8 character in half
	if (!table.empty() && (static_cast<unsigned char>(table.back()) & 0x80))
		table.pop_back();
	table += suffix;
	std::string qualified = "iterable_audience_snapshots." + pg::quote_identifier(table);

	if (previous)
		pg::exec(("CREATE TABLE " + qualified + " AS SELECT record_key, email, user_id, row_hash, synced_at, run_id FROM " +
		          *previous)
		             .c_str());
	else
		pg::exec(("CREATE TABLE " + qualified +
		          " (record_key text NOT NULL, email text, user_id text, row_hash bigint NOT NULL, "
		          "synced_at timestamptz NOT NULL, run_id bigint NOT NULL)")
		             .c_str());
	pg::exec(("ALTER TABLE " + qualified + " ADD PRIMARY KEY (record_key)").c_str());
	// Rows a run writes are written twice: marked in doubt before their batch is sent, then settled
	// (batch_recording.hpp). Room on their pages makes the second write a HOT update (no new index
	// entry); the rows copied above stay packed.
	pg::exec(("ALTER TABLE " + qualified + " SET (fillfactor = 50)").c_str());
	pg::exec(("ALTER EXTENSION iterable_audience ADD TABLE " + qualified).c_str());
	pg::exec(("COMMENT ON TABLE " + qualified + " IS " +
	          pg::quote_literal("Members of the Iterable list of sync \"" + sync_name +
	                            "\" as Iterable acknowledged them, after run " + std::to_string(run_id)))
	             .c_str());
	std::string owner = pg::role_name(sync_owner);
	if (owner.rfind("(dropped role", 0) != 0)
		pg::exec(("GRANT SELECT ON " + qualified + " TO " + pg::quote_identifier(owner)).c_str());
	pg::exec("INSERT INTO iterable_audience.snapshot (sync_id, run_id, table_name) VALUES ($1::bigint, $2::bigint, $3)",
	         {std::to_string(sync_id), std::to_string(run_id), table});
	return qualified;
}

void
drop_snapshot_tables(int64_t sync_id, int keep)
{
	pg::SqlResult old = pg::exec(
	    "SELECT run_id, table_name FROM iterable_audience.snapshot WHERE sync_id = $1::bigint "
	    "ORDER BY run_id DESC OFFSET $2::integer",
	    {std::to_string(sync_id), std::to_string(keep)});
	for (const pg::SqlRow &row : old.rows) {
		std::string qualified = "iterable_audience_snapshots." + pg::quote_identifier(*row[1]);
		pg::SqlValue exists = pg::exec_scalar("SELECT to_regclass($1) IS NOT NULL", {qualified});
		if (exists && *exists == "t") {
			pg::exec(("ALTER EXTENSION iterable_audience DROP TABLE " + qualified).c_str());
			pg::exec(("DROP TABLE " + qualified).c_str());
		}
		pg::exec("DELETE FROM iterable_audience.snapshot WHERE sync_id = $1::bigint AND run_id = $2::bigint",
		         {std::to_string(sync_id), *row[0]});
	}
}

}  // namespace ia
