#include "scheduler/database_hook.hpp"
#include "scheduler/shmem.hpp"
#include "settings.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"
}

namespace ia::scheduler {

namespace {

ProcessUtility_hook_type prev_process_utility = nullptr;

/* The database a statement needs exclusive access to, or NULL. */
const char *
database_needing_exclusive_access(Node *parsetree)
{
	if (IsA(parsetree, DropdbStmt))
		return ((DropdbStmt *) parsetree)->dbname;
	if (IsA(parsetree, RenameStmt) && ((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
		return ((RenameStmt *) parsetree)->subname;
	if (IsA(parsetree, CreatedbStmt))
	{
		ListCell   *option;

		foreach(option, ((CreatedbStmt *) parsetree)->options)
		{
			DefElem    *def = (DefElem *) lfirst(option);

			if (strcmp(def->defname, "template") == 0 && def->arg != NULL)
				return defGetString(def);
		}
	}
	return NULL;
}

void
step_aside_if_served(Node *parsetree)
{
	const char *dbname = database_needing_exclusive_access(parsetree);
	Oid			dboid;

	if (dbname == NULL || settings::database_name == NULL || strcmp(dbname, settings::database_name) != 0)
		return;
	dboid = get_database_oid(dbname, true);
	if (!OidIsValid(dboid) || !pg_database_ownercheck(dboid, GetUserId()))
		return;					/* the statement itself reports the problem */
	request_step_aside(dboid);
}

void
process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree, ProcessUtilityContext context,
                ParamListInfo params, QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	step_aside_if_served(pstmt->utilityStmt);
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

}  // namespace

void
install_database_hook()
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = process_utility;
}

}  // namespace ia::scheduler
