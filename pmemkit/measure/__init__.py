"""Pure statistics and timing: the clock, its overhead, percentiles, histograms, bandwidth."""
