"""The generation engine: create, dispatch, submit, poll, ingest, fail, cancel, expire, sweep.

The only code that changes a generation's state. Every transition is ONE conditional UPDATE
(`filter(pk=..., state__in=expected).update(...)`) that also stamps the transition's timestamp;
it answers whether it won. A duplicate or late task delivery finds the row already moved and does
nothing, which is what makes every Celery task here safe to run twice.

Step functions (`generation_submit`, `generation_poll`, `generation_ingest`) never wait and never
enqueue anything themselves: they answer a `Next` (what to run after how many seconds, and which
concurrency caps got a free slot). generation/tasks.py turns a Next into Celery messages; the
`generate` management command follows the same Next values in the foreground with real sleeps.
So the worker path and the command path run the same engine code.

Claims that keep a step from running twice at once:
- dispatch: the row leaves the fair queue (`dispatched_at`) under SELECT ... FOR UPDATE SKIP LOCKED.
- submit: `due_at <= now` → `due_at = now + ENGINE_CLAIM_TTL` (a second delivery sees a future
  due_at and stops). The provider task id and polling URL are saved in the same UPDATE that moves
  the row to `submitted`, before anything waits; a `submitted` row is only ever polled.
- poll: tasks carry the poll sequence number; recording an answer increments `poll_count` where
  it still equals that number (and the provider task id is the one polled), so exactly one poll
  chain survives duplicates and sweep re-drives.
- ingest: the same due_at claim as submit; the file keys are deterministic and the Asset is
  an upsert (INSERT ... ON CONFLICT DO UPDATE), so even a second run gives one asset.

Modules: state (the transition, Next, claims), create, dispatch, submit, poll, ingest, failure
(retry, reroute, cancel, expire), sweep, and policy (pure decisions: retry, backoff, poll delay).
"""
