// The SQL of a sync's plan, shared by preview_sync() and the run worker so that a preview is, by
// construction, exactly what the next run sends.
//
// Two statements:
//  1. audience_sql(): reads the source once and yields, per audience row, the checked identifiers,
//     the record key, the validation problem (NULL when sendable) and a hash of the values sent.
//     It runs as the sync's owner, into a temporary table.
//  2. plan_sql(): diffs that table against the sync's latest snapshot table set-based (one FULL JOIN
//     on the record key), adds the rows refused by validation and the duplicate keys, drops records
//     whose earlier failure should not be retried, and numbers the rows (seq, in no particular order)
//     with their batch_class: 0 sendable unsubscribes, 1 sendable subscribes, 2 refused rows.
#pragma once

#include <optional>
#include <string>

#include "sync_definition.hpp"

namespace ia {

// Columns: raw_email, raw_user_id, email, user_id, data_fields, record_key, problem, note, row_hash.
std::string audience_sql(const SyncDefinition &sync);

// Columns: seq, batch_class, operation, action, record_key, email, user_id, data_fields, valid,
// error_code, error_message, row_hash, prev_hash (the snapshot's row_hash of the record, NULL when the
// snapshot has none). `snapshot_table` is schema-qualified and quoted, or nullopt for none.
std::string plan_sql(const SyncDefinition &sync, const std::string &audience_table,
                     const std::optional<std::string> &snapshot_table);

// The source as a FROM item: "(<select>) AS src". Throws UserError when the source is unusable.
std::string source_from_item(const std::string &source);

// Validates a source text: a table or view name (returned schema-qualified and quoted) or a single
// read-only SELECT (returned with trailing semicolons removed). Requires an SPI session.
std::string canonical_source(const std::string &source);

}  // namespace ia
