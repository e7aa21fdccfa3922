// Batching of trackBulk events by count and bytes, and the byte cap of single-record bodies
// (reference 10.9: no documented trackBulk limit; RudderStack sends at most 1000 events and
// 4,000,000 bytes, Segment 1001 events; the emulator refuses bodies over 4 MiB with a 413).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ia {

constexpr std::size_t kDefaultTrackBulkMaxEvents = 1000;
constexpr std::size_t kDefaultMaxBodyBytes = 4000000;

// Collects trackBulk elements into {"events":[e1,e2,...]} bodies of at most max_events events and
// max_bytes bytes. Streaming: the engine adds built events in cursor order and sends a body each
// time one is full, so memory stays bounded by one body.
class TrackBulkBatcher {
public:
    enum class Add {
        Added,     // the event is in the current batch
        Full,      // not added: the current batch must be taken first (then add it again)
        TooLarge,  // not added, never will be: the event alone is over max_bytes ('too_large')
    };

    TrackBulkBatcher(std::size_t max_events = kDefaultTrackBulkMaxEvents,
                     std::size_t max_bytes = kDefaultMaxBodyBytes);

    Add add(std::string_view event_json);
    std::size_t count() const { return count_; }
    bool empty() const { return count_ == 0; }
    std::size_t body_bytes() const;  // size of the body take() would return now
    // The body of the current batch, {"events":[...]} ({"events":[]} when empty); starts a new one.
    std::string take();

    // Bytes of the body holding exactly this one event: whether it could ever be sent.
    static std::size_t single_body_bytes(std::string_view event_json);

private:
    std::size_t max_events_, max_bytes_;
    std::string body_;  // "{\"events\":[" + elements joined by ','
    std::size_t count_ = 0;
};

// Whether a single-record body fits under the cap (else the record fails 'too_large').
inline bool body_fits(std::string_view body, std::size_t max_bytes = kDefaultMaxBodyBytes) {
    return body.size() <= max_bytes;
}

}  // namespace ia

#include "core/cpp_only.hpp"
