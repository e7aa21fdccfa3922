// Writing a query's rows into a table the way COPY does (table_multi_insert: a page of rows per call
// and per WAL record) instead of INSERT ... SELECT's one row at a time.
#pragma once

#include <cstdint>
#include <string>

namespace ia::pg {

// Runs `query` through a cursor and appends its rows to the table `relation_oid`, whose columns must
// have the query's types in the query's order. Only for tables this extension creates without
// indexes, constraints other than NOT NULL (which the query must guarantee), triggers or rules.
// Returns the number of rows written. Requires SPI and an open transaction.
uint64_t insert_query_rows(unsigned int relation_oid, const std::string &query);

}  // namespace ia::pg
