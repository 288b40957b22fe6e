-- Extend a running job's lease if the caller still holds it.
--
-- KEYS[1] job state hash
-- ARGV[1] lease id of the caller       ARGV[2] lease length in ms
--
-- Returns the new lease end in ms since the epoch, or 0 when the caller no
-- longer holds the lease.

local state = redis.call('HMGET', KEYS[1], 'status', 'lease_id')
if state[1] ~= 'running' or state[2] ~= ARGV[1] then
  return 0
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lease_until = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'lease_until_ms', lease_until)
return lease_until
