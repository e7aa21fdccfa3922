#include "core/redaction.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

namespace ia {

namespace {

// Levels of encoding recognised: 1 is one percent or JSON escape ("%61", "\u0061", "\/"); 2 is an
// escape each character of which may itself be escaped once: "%2561", "%25%36%31", "\u002561",
// "\\u0061", "\\\"" (JSON in a JSON string), "%5Cu0061". Deeper nesting is not seen in practice.
constexpr int kEscapeDepth = 2;

unsigned char fold(unsigned char c) { return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c - 'A' + 'a') : c; }

int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

template <int Depth, typename Emit>
void forms_at(std::string_view t, std::size_t p, const Emit &emit);

// N hex digits from t[p], each in a form of at most Depth levels: calls emit(value, end).
template <int Depth, int N, typename Emit>
void hex_digits(std::string_view t, std::size_t p, int value, const Emit &emit) {
    if constexpr (N == 0) {
        emit(value, p);
    } else {
        forms_at<Depth>(t, p, [&](unsigned char c, std::size_t e) {
            const int h = hex_value(c);
            if (h >= 0) hex_digits<Depth, N - 1>(t, e, value * 16 + h, emit);
        });
    }
}

// Calls emit(byte, end) for every form of one character starting at t[p] (see the header): the
// character itself and, with Depth > 0, a percent or JSON escape each character of which is in a
// form of at most Depth - 1 levels. (Depth is a template argument: each level is a lambda of its
// own type.)
template <int Depth, typename Emit>
void forms_at(std::string_view t, std::size_t p, const Emit &emit) {
    if (p >= t.size()) return;
    emit(static_cast<unsigned char>(t[p]), p + 1);
    if constexpr (Depth > 0) {
        const unsigned char c0 = static_cast<unsigned char>(t[p]);
        if (c0 != '%' && c0 != '\\') return;  // every escape starts with one of them, at any level
        forms_at<Depth - 1>(t, p, [&](unsigned char intro, std::size_t e) {
            if (intro == '%') {
                hex_digits<Depth - 1, 2>(t, e, 0, [&](int v, std::size_t end) { emit(static_cast<unsigned char>(v), end); });
            } else if (intro == '\\') {
                forms_at<Depth - 1>(t, e, [&](unsigned char c, std::size_t e2) {
                    if (c == 'u') {
                        hex_digits<Depth - 1, 4>(t, e2, 0, [&](int v, std::size_t end) {
                            if (v < 0x80) emit(static_cast<unsigned char>(v), end);
                        });
                    } else if (c == '"' || c == '\\' || c == '/') {
                        emit(c, e2);
                    }
                });
            }
        });
    }
}

// Every form begins with the character itself, '%' or '\': a cheap test before forms_at().
bool may_start(unsigned char c, unsigned char key_char) { return c == '%' || c == '\\' || fold(c) == fold(key_char); }

// The end of the longest match of the key starting at t[p], or npos. The positions reachable after
// each character of the key are kept as a set (a character may have several forms of different
// lengths at one place), so the work is linear in the key's length, never exponential.
std::size_t match_end(std::string_view t, std::size_t p, std::string_view key, std::vector<std::size_t> &cur,
                      std::vector<std::size_t> &next) {
    cur.assign(1, p);
    for (char kc : key) {
        const unsigned char want = fold(static_cast<unsigned char>(kc));
        next.clear();
        for (std::size_t q : cur) {
            if (q >= t.size() || !may_start(static_cast<unsigned char>(t[q]), want)) continue;
            forms_at<kEscapeDepth>(t, q, [&](unsigned char b, std::size_t e) {
                if (fold(b) == want && std::find(next.begin(), next.end(), e) == next.end()) next.push_back(e);
            });
        }
        if (next.empty()) return std::string_view::npos;
        cur.swap(next);
    }
    return *std::max_element(cur.begin(), cur.end());
}

std::string replace_key(std::string_view t, std::string_view key, std::string_view marker) {
    std::string out;
    out.reserve(t.size());
    std::vector<std::size_t> cur, next;
    std::size_t copied = 0, i = 0;
    const unsigned char first = static_cast<unsigned char>(key[0]);
    while (i < t.size()) {
        if (may_start(static_cast<unsigned char>(t[i]), first)) {
            const std::size_t end = match_end(t, i, key, cur, next);
            if (end != std::string_view::npos) {
                out.append(t.data() + copied, i - copied);
                out.append(marker.data(), marker.size());
                i = copied = end;
                continue;
            }
        }
        ++i;
    }
    out.append(t.data() + copied, t.size() - copied);
    return out;
}

// ---- the header-name rule ---------------------------------------------------------------------

bool ascii_alnum(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Length of the key name "api-key", "api_key" or "apikey" (any case) starting at s[i] as a whole
// word, or 0.
std::size_t key_name_at(const std::string &s, std::size_t i) {
    static constexpr std::string_view kNames[] = {"api-key", "api_key", "apikey"};
    if (i > 0 && ascii_alnum(static_cast<unsigned char>(s[i - 1]))) return 0;
    for (std::string_view name : kNames) {
        if (s.size() - i < name.size()) continue;
        bool eq = true;
        for (std::size_t k = 0; k < name.size() && eq; ++k) eq = fold(static_cast<unsigned char>(s[i + k])) == name[k];
        if (!eq) continue;
        const std::size_t end = i + name.size();
        if (end < s.size() && ascii_alnum(static_cast<unsigned char>(s[end]))) return 0;  // e.g. apiKeyIdentifier
        return name.size();
    }
    return 0;
}

// Where the value following a key name ending at s[j] starts, and where it ends.
std::size_t value_start(const std::string &s, std::size_t j) {
    while (j < s.size() && s[j] != '\0' && std::strchr(" \"':=,(", s[j]) != nullptr) ++j;
    return j;
}
std::size_t value_end(const std::string &s, std::size_t k) {
    while (k < s.size() && std::strchr(" \"',);&}]", s[k]) == nullptr) ++k;
    return k;
}

// Replaces the value following "api-key", "api_key" or "apikey" (as a whole word) by the marker.
// A value that itself contains a key name ("apikey api-key: K", "api-key-apikey=K") runs on to the
// end of that name's value, so that the key after the last name is redacted too. A value already
// replaced (the key found by value) is left as it is.
std::string redact_after_key_names(std::string s, std::string_view marker) {
    std::size_t i = 0;
    while (i < s.size()) {
        const std::size_t name_len = key_name_at(s, i);
        if (name_len == 0) {
            ++i;
            continue;
        }
        const std::size_t j = value_start(s, i + name_len);
        if (s.compare(j, marker.size(), marker) == 0) {
            i = j + marker.size();
            continue;
        }
        std::size_t k = value_end(s, j);
        for (std::size_t p = j; p < k; ++p) {  // k grows while names follow each other
            if (const std::size_t n = key_name_at(s, p)) k = std::max(k, value_end(s, value_start(s, p + n)));
        }
        if (k > j) {
            s.replace(j, k - j, marker.data(), marker.size());
            k = j + marker.size();
        }
        i = k;
    }
    return s;
}

}  // namespace

bool contains_secret(std::string_view text, std::string_view key) {
    if (key.empty()) return false;
    std::vector<std::size_t> cur, next;
    const unsigned char first = static_cast<unsigned char>(key[0]);
    for (std::size_t i = 0; i < text.size(); ++i)
        if (may_start(static_cast<unsigned char>(text[i]), first) &&
            match_end(text, i, key, cur, next) != std::string_view::npos)
            return true;
    return false;
}

std::string redact_secret(std::string_view text, std::string_view key) {
    if (key.empty()) return redact_after_key_names(std::string(text), kRedactedMarker);
    static constexpr std::string_view kMarkers[] = {kRedactedMarker, "***", "###", "~~~"};
    for (std::string_view marker : kMarkers) {
        std::string s = redact_after_key_names(replace_key(text, key, marker), marker);
        if (!contains_secret(s, key)) return s;
    }
    return std::string();
}

}  // namespace ia
