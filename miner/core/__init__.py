"""The one-way flow with no I/O: targets, hashing (the C core's face), job/work/nonce, the
dispatcher, the share check, statistics, and the engine that joins them."""
