-- Append one event to a job's stream if the job's state allows it, store the
-- projection snapshot computed by the caller, copy the event to the global
-- stream and move the job between status indexes, in one atomic step.
--
-- KEYS[1] job event stream        KEYS[2] job state hash
-- KEYS[3] global event stream     KEYS[4] index of all jobs by creation time
-- KEYS[5..8] status indexes: queued, running, completed, failed
--
-- ARGV[1] version the caller read      ARGV[2] event key (idempotency)
-- ARGV[3] event type                   ARGV[4] lease id of the caller, or ''
-- ARGV[5] lease length in ms (for a start)
-- ARGV[6] view JSON after the event    ARGV[7] status after the event
-- ARGV[8] job id                       ARGV[9] job creation time in ms
-- ARGV[10] seconds to keep the job once it is finished (0: keep)
-- ARGV[11] oldest global stream entry ID to keep (MINID)
-- ARGV[12..] stream entry fields as name, value pairs
--
-- Returns {'ok', version, lease_until_ms, global_id}, {'duplicate', version},
-- {'conflict', version} or {'rejected', reason, status, lease_left_ms}.

local state = redis.call('HMGET', KEYS[2],
  'version', 'status', 'lease_id', 'lease_until_ms', 'last_event_key')
local version = tonumber(state[1]) or 0
local status = state[2] or ''
local lease_id = state[3] or ''
local lease_until = tonumber(state[4]) or 0
local event_type = ARGV[3]
local caller_lease = ARGV[4]
local new_status = ARGV[7]

-- A retried command whose reply was lost finds its own event already stored.
if state[5] == ARGV[2] then
  return {'duplicate', version}
end
if event_type == 'created' and version ~= 0 then
  return {'rejected', 'exists', status, 0}
end
if version ~= tonumber(ARGV[1]) then
  return {'conflict', version}
end

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local finished = status == 'completed' or status == 'failed'
local lease_left = 0
if status == 'running' and lease_until > now then
  lease_left = lease_until - now
end

if event_type == 'started' or (event_type == 'failed' and caller_lease == '') then
  if finished then
    return {'rejected', 'finished', status, 0}
  end
  if lease_left > 0 then
    return {'rejected', 'leased', status, lease_left}
  end
elseif event_type == 'rerun_requested' then
  if not finished then
    return {'rejected', 'not_finished', status, lease_left}
  end
elseif event_type ~= 'created' then
  -- progress, attempt_failed, completed and failed by a worker: only the
  -- holder of the current lease may write them, even after it expired, as
  -- long as no other delivery has taken the job over.
  if status ~= 'running' or lease_id ~= caller_lease then
    return {'rejected', 'lease_lost', status, lease_left}
  end
end

local fields = {}
for i = 12, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
local new_version = version + 1
redis.call('XADD', KEYS[1], '0-' .. new_version, unpack(fields))
local global_id = redis.call('XADD', KEYS[3], 'MINID', '~', ARGV[11], '*',
  'job_id', ARGV[8], 'version', new_version, unpack(fields))

if event_type == 'started' then
  lease_id = caller_lease
  lease_until = now + tonumber(ARGV[5])
elseif event_type ~= 'progress' then
  lease_id = ''
  lease_until = 0
end
redis.call('HSET', KEYS[2],
  'version', new_version, 'status', new_status, 'lease_id', lease_id,
  'lease_until_ms', lease_until, 'last_event_key', ARGV[2], 'view', ARGV[6])

local index_of = {queued = KEYS[5], running = KEYS[6], completed = KEYS[7], failed = KEYS[8]}
local created_ms = tonumber(ARGV[9])
if event_type == 'created' then
  redis.call('ZADD', KEYS[4], created_ms, ARGV[8])
end
if status ~= new_status then
  if status ~= '' then
    redis.call('ZREM', index_of[status], ARGV[8])
  end
  redis.call('ZADD', index_of[new_status], created_ms, ARGV[8])
end

local keep_s = tonumber(ARGV[10])
if keep_s > 0 and (new_status == 'completed' or new_status == 'failed') then
  -- XADD does not renew a key's TTL, so every event on a finished job sets it.
  redis.call('EXPIRE', KEYS[1], keep_s)
  redis.call('EXPIRE', KEYS[2], keep_s)
end
return {'ok', new_version, lease_until, global_id}
