// Redaction of the API key from text that came from outside (an answer body, a transport error, a
// header) before the extension stores, raises, logs or notifies it. One function does it:
// redact_secret(). Pure C++ (no PostgreSQL), unit-tested and fuzzed (test/fuzz/fuzz_redaction.cpp).
#pragma once

#include <string>
#include <string_view>

namespace ia {

// What replaces a key ("[redacted]"; another marker only for a key that the marker itself could
// help spell, see redact_secret).
constexpr std::string_view kRedactedMarker = "[redacted]";

// Returns `text` with `key` replaced by the marker wherever it appears, in any of these forms and
// mixes of them, character by character:
//   * the character itself, ASCII letters in any case ("AK_x" matches key "ak_X");
//   * percent-encoded, hex digits in any case ("%61" or "%41" for 'a');
//   * JSON-escaped: "\u0061" (hex in any case) and, for '"', '\' and '/', "\"", "\\" and "\/";
//   * twice encoded: an escape each character of which is escaped again ("%2561", "%25%36%31",
//     "\u002561", "%5Cu0061", and a JSON text quoted in a JSON string: "\\u0061", "\\\"");
// so a key partially encoded ("ak%5F\u0058") is found too. Then the value after a header name
// "api-key", "api_key" or "apikey" (any case, as a whole word) is replaced by the marker as well:
// the key of another account, or a key echoed in a shape not listed above, after its header name.
// With an empty key only the header-name rule applies.
// Guarantee: the result never contains the key in any form above (contains_secret() is false). If
// the marker and the text around it could spell the key (a key such as "d]x"), another marker is
// used ("***", "###", "~~~"); if none is safe the result is the empty string.
// Keys of non-ASCII bytes are matched byte for byte and by their percent-encoded bytes only.
std::string redact_secret(std::string_view text, std::string_view key);

// Whether `text` holds `key` in one of the forms redact_secret() replaces (false for an empty key).
bool contains_secret(std::string_view text, std::string_view key);

}  // namespace ia

#include "core/cpp_only.hpp"
