// The SQL of a sync's plan, shared by preview_sync() and the run worker so that a preview is, by
// construction, exactly what the next run sends.
//
// plan_sql() reads the source once (audience_sql(): per audience row, the checked identifiers, the
// record key, the validation problem (NULL when sendable) and a hash of the values sent), diffs it
// against the sync's latest snapshot table set-based (one FULL JOIN on the record key), adds the rows
// refused by validation and the duplicate keys, and numbers the rows (seq, in no particular order)
// with their batch_class: 0 sendable unsubscribes, 1 sendable subscribes, 2 refused rows. It runs as
// the sync's owner (who may read the snapshot tables of its syncs), into a temporary table.
// skip_remembered_failures_sql() then, as the extension's owner, moves to class 3 (not sent, not
// logged) the records whose earlier failure should not be retried.
#pragma once

#include <optional>
#include <string>

#include "definitions/sync_definition.hpp"

namespace ia {

// Columns: raw_email, raw_user_id, email, user_id, data_fields, record_key, problem, note, row_hash.
std::string audience_sql(const SyncDefinition &sync);

// Columns: seq, batch_class, operation, action, record_key, email, user_id, data_fields, valid,
// error_code, error_message, row_hash, prev_hash (the snapshot's row_hash of the record, NULL when the
// snapshot has none). `baseline` is the snapshot table, schema-qualified and quoted, or nullopt.
// expected_keys: about how many records the audience has (the latest snapshot's size; 0 when
// unknown), to size the duplicate-key filter.
std::string plan_sql(const SyncDefinition &sync, const std::optional<std::string> &baseline, int64_t expected_keys);

struct SendOperation;

// UPDATE of the plan table: the records of an operation with a body cap that alone exceed it are
// refused (batch_class 2, error_code 'too_large') before anything is sent.
std::string refuse_oversized_sql(const SendOperation &op, const std::string &plan_table);

// UPDATE of the plan table: batch_class 3 for records not to send again (record_failure).
std::string skip_remembered_failures_sql(const SyncDefinition &sync, const std::string &plan_table);

// The source as a FROM item: "(<select>) AS src". Throws UserError when the source is unusable.
std::string source_from_item(const std::string &source);

// Validates a source text: a table or view name (returned schema-qualified and quoted) or a single
// read-only SELECT (returned with trailing semicolons removed). Requires an SPI session.
std::string canonical_source(const std::string &source);

}  // namespace ia
