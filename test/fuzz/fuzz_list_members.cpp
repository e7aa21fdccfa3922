// libFuzzer target: the getUsers answer parser and the getUsers pacing window
// (src/core/list_members.hpp).
//
// Input: any bytes, taken as a getUsers body; its bytes also drive a sequence of window calls.
// Invariants checked:
//   * parse_list_members either throws ResponseFormatError or returns the body's lines in order,
//     each non-empty and without "\n", none lost: joined back they equal the body with its empty
//     lines removed and one "\r" ending a line (CRLF) dropped;
//   * a body with a NUL byte is always refused;
//   * ListReadWindow never lets more than kListReadsPerWindow requests start within any
//     kListReadWindowSeconds, never lets one start before a refusal has run its minute, and a
//     refused try_take records nothing.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/list_members.hpp"
#include "fuzz_check.hpp"

namespace {

std::string expected_join(std::string_view body) {
    std::string out;
    std::size_t start = 0;
    while (start < body.size()) {
        std::size_t end = body.find('\n', start);
        if (end == std::string_view::npos) end = body.size();
        std::size_t stop = end;
        if (stop > start && body[stop - 1] == '\r') --stop;
        if (stop > start) {
            out.append(body.substr(start, stop - start));
            out += '\n';
        }
        start = end + 1;
    }
    return out;
}

void check_parser(std::string_view body) {
    std::vector<std::string> members;
    try {
        members = ia::parse_list_members(body);
    } catch (const ia::ResponseFormatError&) {
        return;
    }
    FUZZ_CHECK(body.find('\0') == std::string_view::npos, "a body with a NUL byte was accepted");
    std::string joined;
    for (const std::string& m : members) {
        FUZZ_CHECK(!m.empty(), "an empty member");
        FUZZ_CHECK(m.find('\n') == std::string::npos, "a member with a newline");
        joined += m;
        joined += '\n';
    }
    FUZZ_CHECK(joined == expected_join(body), "members lost or changed (%zu members)", members.size());
}

void check_window(const uint8_t* data, std::size_t size) {
    ia::ListReadWindow w;
    w.clear();
    double now = 1000.0;
    double refused_until = 0;
    std::vector<double> starts;
    for (std::size_t i = 0; i < size; i++) {
        now += (data[i] & 0x3f) * 0.75;  // 0 .. 47 s later
        if ((data[i] & 0xc0) == 0xc0) {
            w.refused(now);
            if (now + ia::kListReadWindowSeconds > refused_until) refused_until = now + ia::kListReadWindowSeconds;
            continue;
        }
        double wait = w.try_take(now);
        int in_window = 0;
        for (double s : starts)
            if (s > now - ia::kListReadWindowSeconds) in_window++;
        if (wait == 0) {
            FUZZ_CHECK(now >= refused_until, "a request started %.2f s before a refusal ended", refused_until - now);
            FUZZ_CHECK(in_window < ia::kListReadsPerWindow, "a sixth request within a window at %.2f", now);
            starts.push_back(now);
        } else {
            FUZZ_CHECK(wait > 0, "negative wait %.2f", wait);
            FUZZ_CHECK(now < refused_until || in_window >= ia::kListReadsPerWindow,
                       "refused (wait %.2f) with room in the window", wait);
            // Waiting as told is enough.
            ia::ListReadWindow copy = w;
            FUZZ_CHECK(copy.try_take(now + wait + 1e-6) == 0, "still refused after the wait it gave");
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    check_parser(std::string_view(reinterpret_cast<const char*>(data), size));
    check_window(data, size);
    return 0;
}
