-- The Redis engine's APPEND, a script of its own (src/store/redis_engine.c runs it with EVALSHA):
-- writes are the hot path, so this one does only what a write needs, with as few Redis calls as
-- the rules allow. The engine coalesces the APPEND requests for one channel submitted during one
-- loop turn into one run: the settings are read once, the sequence written once, the ready
-- messages queued with one ZADD and the events published once, whatever the number of requests
-- and messages; each request still gets its own answer, as if it had run alone, in order. Its
-- rules are those of append_one in redis_scripts.lua (dead letters use that one); keep them the
-- same.
--
-- KEYS[1] the channel's base key `<prefix>:{<id>}`
-- ARGV[1] the pub/sub scope (as redis_scripts.lua's ARGV[2]), ARGV[2] the channel id, ARGV[3] the
-- number of requests, then per request: now, n, then per message: the number of fields,
-- idempotency key ('' none), not_before, then the fields as they are stored: tag, value pairs,
-- 't' (the time) first.
-- The engine sends the stream entry's own field, value pairs so that they reach XADD as they
-- came: a message costs Redis no table of its own.
-- Reply: per request {last seq, then per message its seq and 1 when its key repeated (nothing
-- stored)} or an error (EFULL); or one error for all: ENOENT, EFORMAT (a key of the wrong type, a
-- garbage setting).
-- Events: one PUBLISH on `<scope>:ev:{<id>}` of every message the run stored: "w", then for
-- each message its '#' id and its tag, value pairs, every token preceded by a NUL byte (values
-- are C strings: never a NUL inside; redis_codec.h decodes it). Built only when some node
-- subscribes to that channel (the payload is most of a run's work otherwise wasted).

local NTAGS = 10 -- t e s d m c r p o x: the fields a message can have
local READY_CHUNK = 2000
-- Small counts and a zero time, the usual arguments, without parsing them each time.
local NUM = {['0'] = 0, ['1'] = 1, ['2'] = 2, ['3'] = 3, ['4'] = 4, ['5'] = 5, ['6'] = 6,
             ['7'] = 7, ['8'] = 8, ['9'] = 9, ['10'] = 10}
local function num(s) return NUM[s] or tonumber(s) end

local function run()
    local base, scope, chan = KEYS[1], ARGV[1], ARGV[2]
    local meta, s = base .. ':meta', base .. ':s'
    local v = redis.call('HMGET', meta, 'kind', 'seq', 'max_messages', 'rcount', 'rage',
                         'dedup_window')
    if not v[1] then return redis.error_reply('ENOENT') end
    local queue = v[1] == '0'
    local seq = tonumber(v[2])
    local maxm, rcount, rage = tonumber(v[3] or '0'), tonumber(v[4] or '0'), tonumber(v[5] or '0')
    local window = tonumber(v[6] or '0')
    local nreq = tonumber(ARGV[3])
    if (not queue and v[1] ~= '1') or seq == nil or seq < 0 or seq ~= math.floor(seq) or
        maxm == nil or rcount == nil or rage == nil or window == nil or nreq == nil then
        return redis.error_reply('EFORMAT')
    end
    if not (window > 0) then window = 120 end
    local dd, ddx = base .. ':dd', base .. ':ddx'
    local first_seq = seq
    local events = {} -- the tokens of the event payload
    local results = {}
    local i = 4

    -- Topic retention: count, then age from the oldest, stopping at the first young message.
    local function retain(now)
        if rcount > 0 then redis.call('XTRIM', s, 'MAXLEN', rcount) end
        if rage > 0 then
            while true do
                local r = redis.call('XRANGE', s, '-', '+', 'COUNT', 16)
                if #r == 0 then return end
                for _, e in ipairs(r) do
                    local t
                    local kv = e[2]
                    for j = 1, #kv, 2 do if kv[j] == 't' then t = tonumber(kv[j + 1]) end end
                    if t == nil then error('EFORMAT') end
                    if not (t < now - rage) then return end
                    redis.call('XDEL', s, e[1])
                end
            end
        end
    end

    -- Whatever happens to a request, the sequence number and the events of what was stored are
    -- written (a later write must not reuse an id).
    local nev = 0
    -- Events are built only when a node listens: a subscription made after this run reads the
    -- stream instead (the hub subscribes before it reads), so nothing is missed.
    local evchan = scope .. ':ev:{' .. chan .. '}'
    local listened = redis.call('PUBSUB', 'NUMSUB', evchan)[2] > 0
    local ready, nready = {}, 0 -- ZADD arguments of the ready messages, one call for them all
    local function flush_ready() -- in chunks: unpack has a limit
        if nready > 0 then redis.call('ZADD', base .. ':ready', unpack(ready, 1, nready)) end
        nready = 0
    end
    local timed = base .. ':timed'
    local now_s, now -- the requests of one loop turn mostly share their time: parsed once
    local ok, err = pcall(function()
    for q = 1, nreq do
        if ARGV[i] ~= now_s then now_s, now = ARGV[i], tonumber(ARGV[i]) end
        local n = num(ARGV[i + 1])
        if now == nil or n == nil then error('EFORMAT') end
        i = i + 2
        -- Where the request's messages are: the arguments are walked whatever its outcome.
        local first = i
        for _ = 1, n do
            local np = num(ARGV[i])
            if np == nil or np < 1 or np > NTAGS then error('EFORMAT') end
            i = i + 3 + 2 * np
        end
        if i > #ARGV + 1 then error('EFORMAT') end
        local out, expired_keys = {0}, false
        local nout = 1
        if queue and maxm > 0 and redis.call('XLEN', s) + n > maxm then
            out = redis.error_reply('EFULL')
        else
            local m = first
            for _ = 1, n do
                local np, key, nb = num(ARGV[m]), ARGV[m + 1], num(ARGV[m + 2])
                if nb == nil then error('EFORMAT') end
                local a, b = m + 3, m + 2 + 2 * np -- the field, value pairs
                m = b + 1
                local dup
                if key ~= '' then
                    if not expired_keys then
                        for _, g in ipairs(redis.call('ZRANGEBYSCORE', ddx, '-inf', now)) do
                            redis.call('HDEL', dd, g)
                            redis.call('ZREM', ddx, g)
                        end
                        expired_keys = true
                    end
                    local x = redis.call('ZSCORE', ddx, key)
                    if x and tonumber(x) > now then
                        dup = tonumber(redis.call('HGET', dd, key))
                        if dup == nil then error('EFORMAT') end
                    end
                end
                if dup then
                    out[nout + 1] = dup
                    out[nout + 2] = 1
                    nout = nout + 2
                else
                    if not queue and (rcount > 0 or rage > 0) then retain(now) end
                    if maxm > 0 and not queue then
                        local after = redis.call('XLEN', s) + 1
                        if rcount > 0 and after > rcount then after = rcount end
                        if after > maxm then
                            out = redis.error_reply('EFULL')
                            break
                        end
                    end
                    seq = seq + 1
                    local hx = string.format('%016x', seq)
                    local sid = seq < 1e14 and (seq .. '-0') or (string.format('%.17g', seq) .. '-0')
                    redis.call('XADD', s, sid, unpack(ARGV, a, b))
                    if queue then
                        if nb > now then
                            redis.call('ZADD', timed, nb, hx)
                        else
                            ready[nready + 1] = seq
                            ready[nready + 2] = hx
                            nready = nready + 2
                            if nready >= READY_CHUNK then flush_ready() end
                        end
                    elseif rcount > 0 or rage > 0 then
                        retain(now)
                    end
                    -- A delayed message is news only when it can be claimed: not now.
                    if listened and not (queue and nb > now) then
                        nev = nev + 1
                        events[nev] = '#' .. hx
                        for k = a, b do
                            nev = nev + 1
                            events[nev] = ARGV[k]
                        end
                    end
                    if key ~= '' then
                        redis.call('HSET', dd, key, string.format('%.17g', seq))
                        redis.call('ZADD', ddx, now + window, key)
                    end
                    out[nout + 1] = seq
                    out[nout + 2] = 0
                    nout = nout + 2
                end
            end
        end
        if out[1] ~= nil then out[1] = seq end
        results[q] = out
    end
    end)
    flush_ready()
    if seq ~= first_seq then redis.call('HSET', meta, 'seq', string.format('%.17g', seq)) end
    if nev > 0 then
        redis.call('PUBLISH', evchan, 'w\0' .. table.concat(events, '\0'))
    end
    if not ok then error(err) end
    return results
end

local ok, res = pcall(run)
if ok then return res end
-- A refused command (a key of the wrong type written by hand) or a garbage value: no details.
-- Redis refusing a write (out of memory, a replica) passes on its code alone.
local text = type(res) == 'table' and res.err or res
if type(text) == 'string' then
    local code = string.match(text, '^(%u+)')
    if code == 'OOM' or code == 'READONLY' or code == 'BUSY' or code == 'LOADING' then
        return redis.error_reply(code)
    end
end
return redis.error_reply('EFORMAT')
