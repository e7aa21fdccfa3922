// Iterable's answer to GET /api/lists/getUsers (reference/iterable-api.md section 2.4), and the pacing
// rule of that endpoint (5 requests a minute per project, section 5).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/iterable_json.hpp"  // ResponseFormatError

namespace ia {

// The members of a list as getUsers gives them: text/plain, one identifier per line (an email, or a
// userId when the user has none or when preferUserId=true and it has one), a trailing newline, an
// empty body for an empty list. Lines end in "\n" or "\r\n"; empty lines (Iterable's "\n\n\n" for an
// empty list) are skipped; duplicates are kept. Throws ResponseFormatError when the body is not that
// text: a whole JSON object (an error envelope answered with 200), an HTML page, a NUL byte.
std::vector<std::string> parse_list_members(std::string_view body);

// Iterable allows kListReadsPerWindow getUsers requests per kListReadWindowSeconds per project. A
// window remembers the start times of the latest requests of one project (a sliding window, stricter
// than Iterable's leaky bucket, so that following it never meets a 429) and a time before which
// Iterable said no (a 429). Plain data, usable in shared memory; times are seconds on one monotonic
// clock.
constexpr int kListReadsPerWindow = 5;
constexpr double kListReadWindowSeconds = 60.0;

struct ListReadWindow {
	double starts[kListReadsPerWindow];  // request start times; 0 = unused
	double refused_until;                // after a 429: no request before this time

	// All unused.
	void clear() noexcept;
	// May a request start at `now`? If so, records it and returns 0; else returns the seconds to
	// wait (> 0) and records nothing.
	double try_take(double now) noexcept;
	// Iterable answered 429 at `now`: no request for a whole window.
	void refused(double now) noexcept;
};

}  // namespace ia

#include "core/cpp_only.hpp"
