#include "core/event_batches.hpp"

#include <algorithm>

namespace ia {
namespace {
constexpr std::string_view kOpen = "{\"events\":[";
constexpr std::string_view kClose = "]}";
}  // namespace

TrackBulkBatcher::TrackBulkBatcher(std::size_t max_events, std::size_t max_bytes)
    : max_events_(std::max<std::size_t>(1, max_events)), max_bytes_(max_bytes), body_(kOpen) {}

std::size_t TrackBulkBatcher::single_body_bytes(std::string_view event_json) {
    return kOpen.size() + event_json.size() + kClose.size();
}

std::size_t TrackBulkBatcher::body_bytes() const { return body_.size() + kClose.size(); }

TrackBulkBatcher::Add TrackBulkBatcher::add(std::string_view event_json) {
    if (single_body_bytes(event_json) > max_bytes_) return Add::TooLarge;
    const std::size_t grown = body_bytes() + event_json.size() + (count_ > 0 ? 1 : 0);
    if (count_ >= max_events_ || grown > max_bytes_) return Add::Full;
    if (count_ > 0) body_ += ',';
    body_.append(event_json.data(), event_json.size());
    ++count_;
    return Add::Added;
}

std::string TrackBulkBatcher::take() {
    std::string out = std::move(body_);
    out.append(kClose.data(), kClose.size());
    body_.assign(kOpen.data(), kOpen.size());
    count_ = 0;
    return out;
}

}  // namespace ia
