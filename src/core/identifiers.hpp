// Validation of the identifiers sent to Iterable (the "Identifier validation" table of
// docs sql-api.md). Pure functions; hot (called once per audience row).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ia {

// Trims ASCII whitespace (space, \t, \n, \v, \f, \r) at both ends, lowercases ASCII letters, then
// validates. Returns the normalized email, or std::nullopt when it is not a valid address.
//
// A valid address (practical rule, strict enough that Iterable accepts it):
//   * ASCII only (any byte >= 0x80 makes it invalid), no whitespace or control character inside;
//   * exactly one '@', total length <= 254;
//   * local part: 1-64 characters of printable ASCII (0x21-0x7E), none of ( ) , : ; < > [ ] \ " ,
//     not starting or ending with '.', no "..";
//   * domain: 1-253 characters, at least two dot-separated labels; each label 1-63 characters of
//     [a-z0-9-], not starting or ending with '-'; the last label (TLD) is at least 2 letters
//     (a-z only), or an IDN TLD in punycode form "xn--..." (e.g. "xn--p1ai").
//   No quoted local parts, no IP-literal domains ("user@[1.2.3.4]"), no comments.
std::optional<std::string> normalize_email(std::string_view raw);

// The same, written to `out` (room for raw.size() characters): returns the normalized length, or 0
// when the address is not valid. No allocation: the SQL function writes straight into its result.
std::size_t normalize_email_into(std::string_view raw, char *out);

// Same rule, for an address that is already trimmed and lowercased (no allocation).
bool is_valid_normalized_email(std::string_view email);

// Iterable userId rules: non-empty, no leading/trailing whitespace, at most 52 characters,
// printable ASCII only (0x20-0x7E; internal spaces allowed). userIds are case-sensitive and are
// never normalized.
bool is_valid_user_id(std::string_view raw);

constexpr std::size_t kMaxUserIdLength = 52;
constexpr std::size_t kMaxEmailLength = 254;

}  // namespace ia

#include "core/cpp_only.hpp"
