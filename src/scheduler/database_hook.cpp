#include "scheduler/database_hook.hpp"
#include "scheduler/shmem.hpp"
#include "scheduler/wake.hpp"

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

/* Asks the scheduler of the database the statement needs alone, if any, to step aside. */
void
step_aside_if_served(Node *parsetree)
{
	const char *dbname = database_needing_exclusive_access(parsetree);
	Oid			dboid;

	if (dbname == NULL)
		return;
	dboid = get_database_oid(dbname, true);
	if (!OidIsValid(dboid) || !pg_database_ownercheck(dboid, GetUserId()))
		return;					/* the statement itself reports the problem */
	request_step_aside(dboid);
}

bool
names_this_extension(List *names)
{
	ListCell   *cell;

	foreach(cell, names)
		if (strcmp(strVal(lfirst(cell)), "iterable_audience") == 0)
			return true;
	return false;
}

/*
 * After a statement that succeeded: CREATE EXTENSION iterable_audience and CREATE DATABASE (its
 * template may have the extension) wake the launcher at commit, so that the database gets its
 * scheduler at once; DROP EXTENSION wakes the database's scheduler, which then exits.
 */
void
wake_after(Node *parsetree)
{
	if (IsA(parsetree, CreateExtensionStmt) && strcmp(((CreateExtensionStmt *) parsetree)->extname,
	                                                  "iterable_audience") == 0)
		ia::wake_launcher_at_commit_c(true);
	else if (IsA(parsetree, CreatedbStmt))
		ia::wake_launcher_at_commit_c(false);
	else if (IsA(parsetree, DropStmt) && ((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION &&
	         names_this_extension(((DropStmt *) parsetree)->objects))
		ia::wake_scheduler_at_commit_c();
}

void
process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree, ProcessUtilityContext context,
                ParamListInfo params, QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	step_aside_if_served(parsetree);
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	wake_after(parsetree);
}

}  // namespace

void
install_database_hook()
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = process_utility;
}

}  // namespace ia::scheduler
