"""How long callers wait on the guard's background threads: each wait named once, with its reason."""

# stop(): one poll, event delivery or webhook attempt in progress ends well within this; a thread
# still running after it is left behind (a daemon thread never holds up ComfyUI's exit).
STOP_WAIT_S = 2.0
# flush() of events and webhooks (tests, drills, orderly shutdown): the queued work is in memory and
# bounded, so seconds are plenty, and a caller is never held for long by a stuck target.
FLUSH_WAIT_S = 5.0
# The journal's flush and close, and waiting for webhook deliveries: a disk write (fsync) or an HTTP
# attempt that retries may take longer than an in-memory hand-over.
SLOW_FLUSH_WAIT_S = 10.0
# How often wait_deliveries looks at the senders' queues: a fraction of one webhook attempt.
DELIVERY_CHECK_S = 0.02
