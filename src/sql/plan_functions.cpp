// SQL API used by the plan query (plan_sql.cpp) once per audience row:
//   values_hash(email, user_id, data_fields): the hash of the values a record sends, stored in the
//     snapshot; a record whose hash changed is sent again.
//   key_seen_before(record_key, expected_keys): true when the key may have come earlier in this
//     statement's scan (core/repeat_filter.hpp); only those keys are then checked exactly for
//     duplicates.
#include "core/repeat_filter.hpp"

#include "pg/args.hpp"

extern "C" {
#include "common/hashfn.h"
#include "utils/jsonb.h"
}

namespace {

// The duplicate-key filter's memory (see ia_key_seen_before).
constexpr size_t kFilterBytes = size_t{16} << 20;
// Below this many expected keys the filter starts at 2 x 16 bits per key instead.
constexpr int64 kSmallAudience = 256 * 1024;

uint64_t *
zeroed_words(void *mcxt, size_t words)
{
	return static_cast<uint64_t *>(ia::pg::guard([&] {
		return MemoryContextAllocExtended(static_cast<MemoryContext>(mcxt), words * sizeof(uint64_t),
		                                  MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	}));
}

}  // namespace

// Same value as hashtextextended(email || E'\x1f' || user_id || E'\x1f' || data_fields::text, 0),
// with NULLs as empty strings, which earlier snapshots hold: no record looks changed after an upgrade.
IA_SQL_FUNCTION(ia_values_hash)
{
	// One buffer per process, reused: no allocation per row once it has grown.
	static std::string buffer;
	buffer.clear();
	if (!PG_ARGISNULL(0))
		buffer.append(ia::pg::arg_text_view(fcinfo, 0));
	buffer.push_back('\x1f');
	if (!PG_ARGISNULL(1))
		buffer.append(ia::pg::arg_text_view(fcinfo, 1));
	buffer.push_back('\x1f');
	if (!PG_ARGISNULL(2)) {
		Datum d = PG_GETARG_DATUM(2);
		char *json = ia::pg::guard([&] {
			Jsonb *jb = DatumGetJsonbP(d);
			return JsonbToCString(nullptr, &jb->root, VARSIZE(jb));
		});
		buffer.append(json);
		pfree(json);
	}
	uint64 hash = hash_bytes_extended(reinterpret_cast<const unsigned char *>(buffer.data()),
	                                  static_cast<int>(buffer.size()), 0);
	PG_RETURN_INT64(static_cast<int64>(hash));
}

IA_SQL_FUNCTION(ia_key_seen_before)
{
	std::string_view key = ia::pg::arg_text_view(fcinfo, 0);
	FmgrInfo *flinfo = fcinfo->flinfo;
	if (flinfo->fn_extra == nullptr) {
		// The filter of this call site in this execution of the statement: it and its words live in
		// fn_mcxt and end with the statement (the filter owns nothing else; no destructor needed).
		// A fixed budget, so that the plan's memory does not depend on the audience's size: one layer
		// of kFilterBytes from the start, unless the latest snapshot was small (then 16 bits per
		// expected key with room to double, growing by layers up to the same budget). The first run
		// (0: unknown) gets the budget. Past 8M keys its false positives rise (0.04% of 10M keys, 1%
		// of 20M, measured), which costs exact counting of more keys, not memory.
		int64 expected = PG_NARGS() > 1 && !PG_ARGISNULL(1) ? PG_GETARG_INT64(1) : 0;
		uint64_t first_capacity = expected > 0 && expected < kSmallAudience ? static_cast<uint64_t>(2 * expected)
		                                                                    : UINT64_C(1) << 40;
		void *place = ia::pg::guard([&] { return MemoryContextAlloc(flinfo->fn_mcxt, sizeof(ia::RepeatFilter)); });
		flinfo->fn_extra = new (place) ia::RepeatFilter(zeroed_words, flinfo->fn_mcxt, first_capacity, kFilterBytes);
	}
	ia::RepeatFilter *seen = static_cast<ia::RepeatFilter *>(flinfo->fn_extra);
	uint64 hash = hash_bytes_extended(reinterpret_cast<const unsigned char *>(key.data()), static_cast<int>(key.size()),
	                                  0x9e3779b97f4a7c15ULL);
	PG_RETURN_BOOL(seen->test_and_add(hash));
}
