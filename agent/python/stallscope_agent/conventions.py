"""The telemetry names the collector and the dashboard rely on, as in common/conventions.ts.

tests/test_conventions.py checks every value here against that file, so the two agents cannot
drift apart.
"""

KIND = "stallscope.kind"
KINDS_LOOP_BLOCK = "loop-block"
KINDS_SYNC_CALL = "sync-call"
KINDS_NESTED_LOOP = "nested-loop"
KINDS_LOCK_WAIT = "lock-wait"
KINDS_LOCK_HELD = "lock-held"
KINDS_POOL_TASK = "pool-task"

SPAN_NAMES_LOOP_BLOCK = "event loop blocked"
SPAN_NAMES_NESTED_LOOP = "nested event loop"
SPAN_NAMES_LOCK_WAIT = "lock wait"
SPAN_NAMES_LOCK_HELD = "lock held too long"
SPAN_NAMES_POOL_TASK = "pool task"

CODE_FUNCTION = "code.function.name"
CODE_FILE = "code.file.path"
CODE_LINE = "code.line.number"
CODE_COLUMN = "code.column.number"
CODE_STACKTRACE = "code.stacktrace"

BLOCK_THRESHOLD_MS = "stallscope.block.threshold_ms"
BLOCK_CAPTURED = "stallscope.block.stack_captured"
BLOCK_CAPTURE_ERROR = "stallscope.block.capture_error"
BLOCK_ORIGIN = "stallscope.block.origin"

SYNC_API = "stallscope.sync.api"
SYNC_BYTES = "stallscope.sync.bytes"
NESTED_API = "stallscope.nested.api"

LOCK_NAME = "stallscope.lock.name"
LOCK_TYPE = "stallscope.lock.type"
LOCK_OUTCOME = "stallscope.lock.outcome"
LOCK_CONTENDED = "stallscope.lock.contended"
LOCK_QUEUE_DEPTH = "stallscope.lock.queue_depth"
LOCK_ACQUIRE_SITE = "stallscope.lock.acquire_site"
LOCK_HOLDER_SITE = "stallscope.lock.holder_site"
LOCK_HOLDER_TRACE = "stallscope.lock.holder_trace_id"
LOCK_HOLDER_SPAN = "stallscope.lock.holder_span_id"
LOCK_HELD_MS = "stallscope.lock.held_ms"
LOCK_WAITERS = "stallscope.lock.waiters"

POOL_NAME = "stallscope.pool.name"
POOL_TYPE = "stallscope.pool.type"
POOL_TASK = "stallscope.pool.task"
POOL_OUTCOME = "stallscope.pool.outcome"
POOL_QUEUE_WAIT_MS = "stallscope.pool.queue_wait_ms"
POOL_RUN_MS = "stallscope.pool.run_ms"

METRICS_LOOP_DELAY_PREFIX = "nodejs.eventloop.delay."
METRICS_LOOP_UTILIZATION = "nodejs.eventloop.utilization"
METRICS_BLOCKS = "stallscope.eventloop.blocks"
METRICS_BLOCK_DURATION = "stallscope.eventloop.block.duration"
METRICS_SYNC_DURATION = "stallscope.sync.duration"
METRICS_AGENT_ERRORS = "stallscope.agent.errors"
BLOCK_REPORTED = "stallscope.block.reported"
LOCK_METRICS_WAIT_TIME = "stallscope.lock.wait_time"
LOCK_METRICS_HOLD_TIME = "stallscope.lock.hold_time"
LOCK_METRICS_ACQUISITIONS = "stallscope.lock.acquisitions"
LOCK_METRICS_PENDING = "stallscope.lock.pending_requests"
POOL_METRICS_QUEUE_WAIT = "stallscope.pool.queue_wait"
POOL_METRICS_RUN_TIME = "stallscope.pool.run_time"
POOL_METRICS_QUEUE_SIZE = "stallscope.pool.queue_size"
POOL_METRICS_THREADS = "stallscope.pool.threads"
POOL_METRICS_MAX_THREADS = "stallscope.pool.max_threads"

LOOP_DELAY_STATS = ("min", "max", "mean", "stddev", "p50", "p90", "p99")
