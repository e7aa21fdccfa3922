// The run worker's private memory. getrusage's peak RSS also counts the shared-buffer pages the
// process touched (up to shared_buffers), which says nothing about what the run itself holds; the
// anonymous resident memory (RssAnon in /proc/self/status) does, so it is sampled during the run.
#pragma once

namespace ia {

// Samples RssAnon now and remembers the largest value seen (kB).
void sample_private_memory();
long peak_private_memory_kb();

}  // namespace ia
