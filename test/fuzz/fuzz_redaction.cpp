// libFuzzer target: redact_secret() (src/core/redaction.hpp), the API key out of outside text.
//
// Input: byte 0 gives the key's length (1-40), the next bytes its characters (mapped to printable
// ASCII without space, as create_account() accepts), the rest a small program writing the text:
//   0x00-0xDF      that byte, as text;
//   0xE0-0xFD      the key, each character encoded as the next program byte chooses (see
//                  encode_char: as is, other case, percent, JSON, twice encoded, ...);
//   0xFE b         byte b, as text (any byte, program bytes included);
//   0xFF           "Api-Key: " (the header-name rule).
// Invariants checked:
//   * a text the key was written into (in any of the encodings above) is seen to contain it;
//   * the redacted text does not contain it, neither by contains_secret() nor by an oracle written
//     here: the text, its percent-decoding, its JSON-unescaping, and each of the four compositions
//     of two of these decodings, lower-cased, never hold the lower-cased key;
//   * a text in which the key is not found and that has no "api" in it is returned unchanged.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/redaction.hpp"
#include "fuzz_check.hpp"

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
char upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }
std::string lowered(std::string s) {
    for (char& c : s) c = lower(c);
    return s;
}

std::string hex2(unsigned char c, bool up) {
    const char* d = up ? "0123456789ABCDEF" : "0123456789abcdef";
    return {d[c >> 4], d[c & 15]};
}

// One key character in the encoding `choice` picks.
std::string encode_char(char c, uint8_t choice) {
    const unsigned char u = static_cast<unsigned char>(c);
    switch (choice % 14) {
        case 0: return std::string(1, c);
        case 1: return std::string(1, upper(c));
        case 2: return std::string(1, lower(c));
        case 3: return "%" + hex2(u, true);
        case 4: return "%" + hex2(static_cast<unsigned char>(upper(c)), false);
        case 5: return "\\u00" + hex2(u, true);
        case 6: return "\\u00" + hex2(static_cast<unsigned char>(lower(c)), false);
        case 7: return (c == '"' || c == '\\' || c == '/') ? std::string("\\") + c : std::string(1, c);
        case 8: return "%25" + hex2(u, choice & 16);                                 // double percent
        case 9: return "\\u0025" + hex2(u, choice & 16);                             // JSON-escaped '%'
        case 10: return "\\\\u00" + hex2(u, choice & 16);                            // JSON in JSON
        case 11: return "%25%" + hex2(static_cast<unsigned char>(hex2(u, true)[0]), true) + "%" +
                        hex2(static_cast<unsigned char>(hex2(u, true)[1]), true);    // digits encoded too
        case 12: return "%5Cu00" + hex2(u, false);                                   // percent-encoded '\'
        default:
            if (c == '"' || c == '\\' || c == '/') return std::string("\\\\\\") + c;  // \\\" : twice JSON
            return std::string(1, c);
    }
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Decoders for the oracle, written independently of src/core: anything they do not understand is
// kept as it is.
std::string percent_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::string json_unescape(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\' || i + 1 >= s.size()) {
            out += s[i];
            continue;
        }
        const char n = s[i + 1];
        if (n == '"' || n == '\\' || n == '/') {
            out += n;
            ++i;
        } else if (n == 'u' && i + 5 < s.size() && hex_value(s[i + 2]) >= 0 && hex_value(s[i + 3]) >= 0 &&
                   hex_value(s[i + 4]) >= 0 && hex_value(s[i + 5]) >= 0) {
            const int v = ((hex_value(s[i + 2]) * 16 + hex_value(s[i + 3])) * 16 + hex_value(s[i + 4])) * 16 +
                          hex_value(s[i + 5]);
            out += v < 0x80 ? static_cast<char>(v) : '\x80';  // non-ASCII: never part of a key
            i += 5;
        } else {
            out += s[i];
        }
    }
    return out;
}

bool oracle_sees(const std::string& text, const std::string& key) {
    const std::string k = lowered(key);
    const std::string p = percent_decode(text), j = json_unescape(text);
    const std::string forms[] = {text, p, j, percent_decode(p), json_unescape(j), json_unescape(p), percent_decode(j)};
    for (const std::string& f : forms)
        if (lowered(f).find(k) != std::string::npos) return true;
    return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    const std::size_t key_len = 1 + data[0] % 40;
    if (size < 1 + key_len) return 0;
    std::string key;
    for (std::size_t i = 0; i < key_len; ++i) key += static_cast<char>(0x21 + data[1 + i] % 94);
    std::string text;
    int inserted = 0;
    for (std::size_t i = 1 + key_len; i < size; ++i) {
        const uint8_t op = data[i];
        if (op < 0xE0) {
            text += static_cast<char>(op);
        } else if (op <= 0xFD) {
            for (char c : key) text += encode_char(c, i + 1 < size ? data[++i] : 0);
            ++inserted;
        } else if (op == 0xFE) {
            if (i + 1 < size) text += static_cast<char>(data[++i]);
        } else {
            text += "Api-Key: ";
        }
    }
    const bool found = ia::contains_secret(text, key);
    if (inserted > 0) FUZZ_CHECK(found, "the key written into the text is not found: key=%s text=%s", key.c_str(), text.c_str());
    const std::string out = ia::redact_secret(text, key);
    FUZZ_CHECK(!ia::contains_secret(out, key), "redacted text still holds the key: key=%s out=%s", key.c_str(), out.c_str());
    FUZZ_CHECK(!oracle_sees(out, key), "a decoding of the redacted text holds the key: key=%s out=%s", key.c_str(),
               out.c_str());
    if (!found && lowered(text).find("api") == std::string::npos)
        FUZZ_CHECK(out == text, "text without the key was changed: key=%s text=%s out=%s", key.c_str(), text.c_str(),
                   out.c_str());
    return 0;
}
