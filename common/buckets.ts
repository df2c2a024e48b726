// Histogram bucket bounds (seconds) the Node agent gives its explicit-bucket histograms, and
// so the bounds the collector finds in their points.

/** Waits and holds: from 100 us (an uncontended hop) to 10 s (something is stuck). */
export const WAIT_BUCKETS_S = [0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Watched sync calls: most are short, and a second is already extreme. */
export const SYNC_BUCKETS_S = [0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];

/** Main-thread pauses of the loop profiler's commands: about a millisecond, a start hundreds in a large app. */
export const PAUSE_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** Blocking episodes start at the threshold (50 ms or more). */
export const BLOCK_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Worker-pool tasks: queue waits and runs of a millisecond to half a minute. */
export const POOL_BUCKETS_S = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** HTTP server request durations: the semantic conventions' advised bounds. */
export const HTTP_DURATION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
