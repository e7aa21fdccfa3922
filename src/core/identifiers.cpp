#include "core/identifiers.hpp"

namespace ia {
namespace {

constexpr bool is_ascii_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

constexpr char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

constexpr bool is_lower_alpha(char c) { return c >= 'a' && c <= 'z'; }
constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Local-part character: printable ASCII without space, '@' and the specials ( ) , : ; < > [ ] \ "
constexpr bool is_local_char(char ch) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x21 || c > 0x7E) return false;
    switch (c) {
        case '(': case ')': case ',': case ':': case ';': case '<': case '>':
        case '[': case ']': case '\\': case '"': case '@':
            return false;
        default:
            return true;
    }
}

bool valid_local(std::string_view local) {
    if (local.empty() || local.size() > 64) return false;
    if (local.front() == '.' || local.back() == '.') return false;
    char prev = 0;
    for (char c : local) {
        if (!is_local_char(c)) return false;
        if (c == '.' && prev == '.') return false;
        prev = c;
    }
    return true;
}

// The domain must be lowercase already.
bool valid_domain(std::string_view domain) {
    if (domain.empty() || domain.size() > 253) return false;
    std::size_t labels = 0;
    std::size_t start = 0;
    std::string_view last;
    while (true) {
        std::size_t dot = domain.find('.', start);
        std::string_view label = domain.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (label.empty() || label.size() > 63) return false;
        if (label.front() == '-' || label.back() == '-') return false;
        for (char c : label) {
            if (!(is_lower_alpha(c) || is_digit(c) || c == '-')) return false;
        }
        ++labels;
        last = label;
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    if (labels < 2) return false;
    // TLD: at least two letters, or punycode "xn--" followed by something.
    if (last.size() > 4 && last.substr(0, 4) == "xn--") return true;
    if (last.size() < 2) return false;
    for (char c : last) {
        if (!is_lower_alpha(c)) return false;
    }
    return true;
}

}  // namespace

bool is_valid_normalized_email(std::string_view email) {
    if (email.empty() || email.size() > kMaxEmailLength) return false;
    const std::size_t at = email.find('@');
    if (at == std::string_view::npos) return false;
    if (email.find('@', at + 1) != std::string_view::npos) return false;
    return valid_local(email.substr(0, at)) && valid_domain(email.substr(at + 1));
}

std::size_t normalize_email_into(std::string_view raw, char *out) {
    std::size_t b = 0, e = raw.size();
    while (b < e && is_ascii_space(static_cast<unsigned char>(raw[b]))) ++b;
    while (e > b && is_ascii_space(static_cast<unsigned char>(raw[e - 1]))) --e;
    const std::string_view trimmed = raw.substr(b, e - b);
    if (trimmed.empty() || trimmed.size() > kMaxEmailLength) return 0;
    for (std::size_t i = 0; i < trimmed.size(); ++i) out[i] = ascii_lower(trimmed[i]);
    return is_valid_normalized_email(std::string_view(out, trimmed.size())) ? trimmed.size() : 0;
}

std::optional<std::string> normalize_email(std::string_view raw) {
    std::string out(raw.size(), '\0');
    const std::size_t n = normalize_email_into(raw, out.data());
    if (n == 0) return std::nullopt;
    out.resize(n);
    return out;
}

bool is_valid_user_id(std::string_view raw) {
    if (raw.empty() || raw.size() > kMaxUserIdLength) return false;
    if (raw.front() == ' ' || raw.back() == ' ') return false;
    for (char ch : raw) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c > 0x7E) return false;
    }
    return true;
}

}  // namespace ia
