-- The Redis engine's server-side script (src/store/redis_engine.c runs it with EVALSHA). One
-- script, dispatched on ARGV[1], so that every request is one atomic step on its channel's shard
-- and one SHA-1 serves every node. The key layout is described at the top of redis_engine.c.
--
-- APPEND runs its own smaller script, redis_append.lua.
--
-- KEYS[1] the channel's base key `<prefix>:{<id>}` (every other key of the channel is derived from
--         it, so all of them share its hash tag and slot); FORMAT: `<prefix>:format`
-- KEYS[2] `<prefix>:channels`, the set of channel ids on this shard
-- KEYS[3] dead letters on this shard: the dead-letter queue's base key (CLAIM, TERMINATE)
-- ARGV[1] the operation; ARGV[2] the pub/sub scope, which starts every channel name published on
--         (`<scope>:ev:{<id>}`, `<scope>:ctl`): built by the engine from the prefix and the db
--         (sl__redis_scope), because Redis hands a PUBLISH to the subscribers of every db;
--         ARGV[3] the channel id
--
-- Keys are not type-checked one by one: a command on a key of the wrong type fails, and the
-- dispatcher turns any failure into EFORMAT.
-- Numbers come in as decimal text and leave as text when they are not integers (a Lua number
-- becomes a truncated integer in a reply). Errors are replies whose text is the sluice error name
-- (ENOENT, EEXIST, EKIND, EINVAL, EFULL, EFORMAT, EFORMATVERSION); the engine maps them. Stored
-- values are checked before use: a key of the wrong type or a garbage field yields EFORMAT, never
-- a Lua runtime error with stored bytes in it.

local op, scope, chan = ARGV[1], ARGV[2], ARGV[3]
local base = KEYS[1]
local K = {
    meta = base .. ':meta', s = base .. ':s', ready = base .. ':ready', timed = base .. ':timed',
    att = base .. ':att', own = base .. ':own', cur = base .. ':cur', used = base .. ':used',
    dd = base .. ':dd', ddx = base .. ':ddx', pres = base .. ':pres', presx = base .. ':presx',
}
local FORMAT = 1
local META_FIELDS = {'kind', 'seq', 'max_messages', 'rcount', 'rage', 'claim_timeout',
                     'max_attempts', 'backoff', 'dedup_window', 'cursor_idle', 'visibility'}
-- The message fields whose bytes count against a read's byte bound (sl_message_size).
local SIZED = {s = true, d = true, m = true, c = true, r = true, p = true, o = true, x = true}

local function fail(name) return redis.error_reply(name) end
local function fmt(n) return string.format('%.17g', n) end
local function hexid(seq) return string.format('%016x', seq) end
local function sid(seq) return fmt(seq) .. '-0' end

-- Raised as a Lua error carrying a table, caught by the dispatcher (pcall) and turned into the
-- error reply: no stored bytes ever reach the message.
local function bad() error({sl = 'EFORMAT'}) end

local function num(v, dflt)
    if v == false or v == nil then return dflt end
    local n = tonumber(v)
    if n == nil or n ~= n then bad() end
    return n
end

local function check_type(key, want)
    local t = redis.call('TYPE', key)['ok']
    if t ~= 'none' and t ~= want then bad() end
    return t ~= 'none'
end

-- The channel's settings the rules need; nil when the channel does not exist.
-- (A key of the wrong type makes the command fail: caught below, EFORMAT.)
local function load_meta(k)
    local v = redis.call('HMGET', k.meta, unpack(META_FIELDS))
    if not v[1] and not v[2] then return nil end
    local m = {}
    m.kind = v[1]
    if m.kind ~= '0' and m.kind ~= '1' then bad() end
    m.queue = m.kind == '0'
    m.seq = num(v[2], nil)
    if m.seq == nil or m.seq < 0 or m.seq ~= math.floor(m.seq) then bad() end
    m.max_messages = num(v[3], 0)
    m.rcount = num(v[4], 0)
    m.rage = num(v[5], 0)
    m.claim_timeout = num(v[6], 0)
    if not (m.claim_timeout > 0) then m.claim_timeout = 300 end
    m.max_attempts = num(v[7], 0)
    m.backoff = {}
    if v[8] and v[8] ~= '' then
        for w in string.gmatch(v[8], '[^ ]+') do m.backoff[#m.backoff + 1] = num(w) end
    end
    m.dedup_window = num(v[9], 0)
    if not (m.dedup_window > 0) then m.dedup_window = 120 end
    m.cursor_idle = num(v[10], 0)
    if not (m.cursor_idle > 0) then m.cursor_idle = 86400 end
    m.visibility = v[11] or '0'
    m.k = k
    return m
end

local function keys_of(b)
    return {
        meta = b .. ':meta', s = b .. ':s', ready = b .. ':ready', timed = b .. ':timed',
        att = b .. ':att', own = b .. ':own', cur = b .. ':cur', used = b .. ':used',
        dd = b .. ':dd', ddx = b .. ':ddx',
    }
end

local function backoff_for(m, attempt)
    local n = #m.backoff
    if n == 0 then return 0 end
    local i = attempt > 0 and attempt or 1
    if i > n then i = n end
    return m.backoff[i]
end

-- A stream entry as a field table; nil when it is gone. Entries are checked: a timestamp and data.
local function entry(k, id)
    local r = redis.call('XRANGE', k.s, id, id)
    if #r == 0 then return nil end
    return r[1]
end

local function fields_of(e)
    local f, kv = {}, e[2]
    if type(kv) ~= 'table' or #kv % 2 ~= 0 then bad() end
    for i = 1, #kv, 2 do f[kv[i]] = kv[i + 1] end
    if f.t == nil or tonumber(f.t) == nil or f.d == nil then bad() end
    return f
end

local function size_of(e)
    local n, kv = 0, e[2]
    for i = 1, #kv, 2 do if SIZED[kv[i]] then n = n + #kv[i + 1] end end
    return n
end

local function seq_of(e)
    local s = string.match(e[1], '^(%d+)%-0$')
    if s == nil then bad() end
    return tonumber(s)
end

local function expired(f, now)
    local e = tonumber(f.e or '0') or 0
    return e > 0 and e <= now
end

-- The event a write publishes (the same as redis_append.lua's): "w", then the message's '#' id
-- and its tag, value pairs, each token preceded by a NUL byte.
local function event_of(seq, kv)
    return 'w\0#' .. hexid(seq) .. '\0' .. table.concat(kv, '\0')
end

local function evchan(id) return scope .. ':ev:{' .. id .. '}' end
local function ctl() return scope .. ':ctl' end

-- Removes a message from every structure of its channel.
local function unlink(m, id)
    local k = m.k
    local n = redis.call('XDEL', k.s, id)
    if m.queue then
        local hx = hexid(tonumber((string.match(id, '^(%d+)'))))
        redis.call('ZREM', k.ready, hx)
        redis.call('ZREM', k.timed, hx)
        redis.call('HDEL', k.att, hx)
        redis.call('HDEL', k.own, hx)
    end
    return n
end

-- Topic retention: count first, then age from the oldest, stopping at the first young message.
local function retain(m, now)
    if m.queue then return end
    if m.rcount > 0 then redis.call('XTRIM', m.k.s, 'MAXLEN', m.rcount) end
    if m.rage > 0 then
        while true do
            local r = redis.call('XRANGE', m.k.s, '-', '+', 'COUNT', 16)
            if #r == 0 then return end
            for _, e in ipairs(r) do
                local f = fields_of(e)
                if not (tonumber(f.t) < now - m.rage) then return end
                redis.call('XDEL', m.k.s, e[1])
            end
        end
    end
end

-- Appends one message (kv: the stream fields) to channel m; returns its seq or nil, 'EFULL'.
-- Dead letters use it; writes run redis_append.lua, which follows the same rules.
local function append_one(m, id, kv, now, not_before)
    if not m.queue then retain(m, now) end
    local live = redis.call('XLEN', m.k.s)
    local after = live + 1
    if not m.queue and m.rcount > 0 and after > m.rcount then after = m.rcount end
    if m.max_messages > 0 and after > m.max_messages then return nil, 'EFULL' end
    local seq = m.seq + 1
    m.seq = seq
    redis.call('HSET', m.k.meta, 'seq', fmt(seq))
    redis.call('XADD', m.k.s, sid(seq), unpack(kv))
    if m.queue then
        if not_before > now then
            redis.call('ZADD', m.k.timed, not_before, hexid(seq))
        else
            redis.call('ZADD', m.k.ready, seq, hexid(seq))
        end
    else
        retain(m, now)
    end
    redis.call('PUBLISH', evchan(id), event_of(seq, kv))
    return seq
end

-- the fourth element: the claims held (in-flight messages of a queue).
local function info_reply(k, id)
    local h = redis.call('HGETALL', k.meta)
    return {id, h, redis.call('XLEN', k.s), redis.call('HLEN', k.own)}
end

-- ---- operations ------------------------------------------------------------------------------

-- Every run executes this whole chunk again, and creating a closure costs (its upvalues are looked
-- up one by one): each operation is defined only when it is the one asked for.
local ops = {}

-- ARGV[4..]: field, value pairs of the settings (epoch included).
if op == 'create' then
function ops.create()
    check_type(K.meta, 'hash')
    check_type(KEYS[2], 'set')
    if redis.call('EXISTS', K.meta) == 1 then return fail('EEXIST') end
    for _, key in pairs(K) do redis.call('DEL', key) end
    local args = {}
    for i = 4, #ARGV do args[#args + 1] = ARGV[i] end
    redis.call('HSET', K.meta, 'seq', '0', unpack(args))
    redis.call('SADD', KEYS[2], chan)
    redis.call('PUBLISH', ctl(), 'c ' .. chan)
    return 'OK'
end
end

if op == 'drop' then
function ops.drop()
    check_type(KEYS[2], 'set')
    if not check_type(K.meta, 'hash') then return fail('ENOENT') end
    for _, key in pairs(K) do redis.call('DEL', key) end
    redis.call('SREM', KEYS[2], chan)
    redis.call('PUBLISH', evchan(chan), 'd')
    redis.call('PUBLISH', ctl(), 'd ' .. chan)
    return 'OK'
end
end

if op == 'info' then
function ops.info()
    if load_meta(K) == nil then return fail('ENOENT') end
    return info_reply(K, chan)
end
end

-- Every channel of this shard (the engine merges and sorts the shards' lists).
if op == 'list' then
function ops.list()
    if not check_type(KEYS[2], 'set') then return {} end
    local kprefix = string.sub(KEYS[2], 1, -#':channels' - 1) -- KEYS[2] is `<prefix>:channels`
    local out = {}
    for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
        local k = keys_of(kprefix .. ':{' .. id .. '}')
        if load_meta(k) ~= nil then out[#out + 1] = info_reply(k, id) end
    end
    return out
end
end

-- Moves what became due from `timed` to `ready`: expired leases (after the attempt's backoff
-- step, when the queue has one) and passed nack delays.
local function promote_due(m, now)
    local k = m.k
    local due = redis.call('ZRANGEBYSCORE', k.timed, '-inf', now, 'WITHSCORES')
    for i = 1, #due, 2 do
        local hx, when = due[i], tonumber(due[i + 1])
        local claimed = redis.call('HEXISTS', k.own, hx) == 1
        redis.call('HDEL', k.own, hx)
        local b = 0
        if claimed then b = backoff_for(m, num(redis.call('HGET', k.att, hx), 0)) end
        if b > 0 and when + b > now then
            redis.call('ZADD', k.timed, when + b, hx)
        else
            local seq = tonumber(hx, 16)
            if seq == nil then bad() end
            redis.call('ZREM', k.timed, hx)
            redis.call('ZADD', k.ready, seq, hx)
        end
    end
end

local function dead_kv(e, reason)
    local kv = {}
    local src = e[2]
    for i = 1, #src, 2 do
        if src[i] ~= 'e' and src[i] ~= 'x' then
            kv[#kv + 1] = src[i]
            kv[#kv + 1] = src[i + 1]
        end
    end
    kv[#kv + 1] = 'x'
    kv[#kv + 1] = reason
    return kv
end

-- Dead letters: ARGV[dl] is the dead-letter queue's id ('' none), ARGV[dl + 1] 'local' (KEYS[3]
-- on this shard) or 'remote', ARGV[dl + 2] an epoch for a queue created here. Returns
-- {dead_rc, created info or false}: the engine stores remote ones itself.
local dead_store
local function dead_letter(dead, now, dl, where, epoch, src)
    if #dead == 0 then return {0, false} end
    if dl == '' then return {'ENOENT', false} end
    if where ~= 'local' then return {'REMOTE', src.visibility} end
    return dead_store(keys_of(KEYS[3]), dl, dead, now, epoch, src.visibility)
end

-- Stores dead letters (each {seq, kv}) into queue dl (keys k), creating it as a private queue.
dead_store = function(k, dl, dead, now, epoch, visibility)
    local created = false
    if not check_type(k.meta, 'hash') then
        for _, key in pairs(k) do redis.call('DEL', key) end
        redis.call('HSET', k.meta, 'seq', '0', 'name', dl, 'description', '', 'dead_letter', '',
                   'kind', '0', 'visibility', visibility, 'mode', '0', 'claim_timeout', '300',
                   'max_attempts', '0', 'max_messages', '0', 'rcount', '0', 'rage', '0',
                   'presence', '0', 'join_leave', '0', 'backoff', '', 'dedup_window', '0',
                   'cursor_idle', '0', 'epoch', epoch)
        check_type(KEYS[2], 'set')
        redis.call('SADD', KEYS[2], dl)
        redis.call('PUBLISH', ctl(), 'c ' .. dl)
        created = true
    end
    local m = load_meta(k)
    local rc = 0
    for _, d in ipairs(dead) do
        local seq, err = append_one(m, dl, d[2], now, 0)
        if seq == nil then rc = err end
    end
    if created then return {rc, info_reply(k, dl)} end
    return {rc, false}
end

-- A message in a reply: {stream id, fields, attempt, claim_expires_at as text}.
-- ARGV[4] now, ARGV[5] reader, ARGV[6] limit, ARGV[7] max_bytes (-1: none), ARGV[8..10] dead
-- letters. Reply: {more, claimed, dead, dead_rc, created info}.
if op == 'claim' then
function ops.claim()
    local m = load_meta(K)
    if m == nil then return fail('ENOENT') end
    if not m.queue then return fail('EKIND') end
    local now, reader, limit, maxb = num(ARGV[4]), ARGV[5], num(ARGV[6]), num(ARGV[7])
    promote_due(m, now)
    if limit <= 0 then return {0, {}, {}, 0, false} end
    local out, dead, dead_store_list, bytes = {}, {}, {}, 0
    local expires = now + m.claim_timeout
    local stop = false
    while not stop and #out < limit do
        local ids = redis.call('ZRANGE', K.ready, 0, limit - #out - 1)
        if #ids == 0 then break end
        for _, hx in ipairs(ids) do
            local seq = tonumber(hx, 16)
            if seq == nil then bad() end
            local e = entry(K, sid(seq))
            if e == nil then
                redis.call('ZREM', K.ready, hx) -- its message is gone: nothing to claim
            else
                local f = fields_of(e)
                local att = num(redis.call('HGET', K.att, hx), 0)
                local why = nil
                if expired(f, now) then
                    why = 'expired'
                elseif m.max_attempts > 0 and att >= m.max_attempts then
                    why = 'max_attempts'
                end
                local size = size_of(e)
                if why == nil and #out > 0 and maxb >= 0 and
                    (size > maxb or bytes > maxb - size) then
                    stop = true
                    break
                end
                if why then
                    local kv = dead_kv(e, why)
                    dead[#dead + 1] = {hexid(seq), kv, att, '0'}
                    dead_store_list[#dead_store_list + 1] = {seq, kv}
                    unlink(m, e[1])
                else
                    redis.call('ZREM', K.ready, hx)
                    redis.call('HSET', K.att, hx, att + 1)
                    redis.call('HSET', K.own, hx, reader)
                    redis.call('ZADD', K.timed, expires, hx)
                    bytes = bytes + size
                    out[#out + 1] = {hexid(seq), e[2], att + 1, fmt(expires)}
                    if #out >= limit then break end
                end
            end
        end
    end
    local more = redis.call('ZCARD', K.ready) > 0 and 1 or 0
    local d = dead_letter(dead_store_list, now, ARGV[8], ARGV[9], ARGV[10], m)
    return {more, out, dead, d[1], d[2]}
end
end

-- The ids (ARGV[from..]) reader holds a live claim on, each once.
local function live_claims(m, reader, now, from)
    local k, seen, out = m.k, {}, {}
    for i = from, #ARGV do
        local hx = ARGV[i]
        if not seen[hx] and redis.call('HGET', k.own, hx) == reader then
            local when = tonumber(redis.call('ZSCORE', k.timed, hx) or '')
            if when and when > now then out[#out + 1] = hx end
        end
        seen[hx] = true
    end
    return out
end

local function queue_meta()
    local m = load_meta(K)
    if m == nil then return nil, fail('ENOENT') end
    if not m.queue then return nil, fail('EKIND') end
    return m
end

-- ARGV[4] now, ARGV[5] reader, ARGV[6..] ids (16 hex digits, checked by the engine).
if op == 'ack' then
function ops.ack()
    local m, err = queue_meta()
    if m == nil then return err end
    local ids = live_claims(m, ARGV[5], num(ARGV[4]), 6)
    for _, hx in ipairs(ids) do unlink(m, sid(tonumber(hx, 16))) end
    return #ids
end
end

-- ARGV[4] now, ARGV[5] reader, ARGV[6] delay (0: backoff; < 0: at once), ARGV[7..] ids.
if op == 'nack' then
function ops.nack()
    local m, err = queue_meta()
    if m == nil then return err end
    local now, delay = num(ARGV[4]), num(ARGV[6])
    local ids = live_claims(m, ARGV[5], now, 7)
    for _, hx in ipairs(ids) do
        redis.call('HDEL', K.own, hx)
        local d = delay
        if d == 0 then d = backoff_for(m, num(redis.call('HGET', K.att, hx), 0)) end
        if d > 0 then
            redis.call('ZADD', K.timed, now + d, hx)
        else
            redis.call('ZREM', K.timed, hx)
            redis.call('ZADD', K.ready, tonumber(hx, 16), hx)
        end
    end
    return #ids
end
end

-- ARGV[4] now, ARGV[5] reader, ARGV[6] seconds (<= 0: the claim timeout), ARGV[7..] ids.
if op == 'extend' then
function ops.extend()
    local m, err = queue_meta()
    if m == nil then return err end
    local now, secs = num(ARGV[4]), num(ARGV[6])
    if not (secs > 0) then secs = m.claim_timeout end
    local ids = live_claims(m, ARGV[5], now, 7)
    for _, hx in ipairs(ids) do redis.call('ZADD', K.timed, now + secs, hx) end
    return #ids
end
end

-- ARGV[4] now, ARGV[5] reader, ARGV[6] reason, ARGV[7..9] dead letters, ARGV[10..] ids.
-- Reply: {count, dead, dead_rc, created info}.
if op == 'terminate' then
function ops.terminate()
    local m, err = queue_meta()
    if m == nil then return err end
    local now = num(ARGV[4])
    local ids = live_claims(m, ARGV[5], now, 10)
    local dead, list = {}, {}
    for _, hx in ipairs(ids) do
        local seq = tonumber(hx, 16)
        local e = entry(K, sid(seq))
        if e then
            fields_of(e)
            local kv = dead_kv(e, ARGV[6])
            dead[#dead + 1] = {hx, kv, num(redis.call('HGET', K.att, hx), 0), '0'}
            list[#list + 1] = {seq, kv}
            unlink(m, e[1])
        end
    end
    local d = dead_letter(list, now, ARGV[7], ARGV[8], ARGV[9], m)
    return {#dead, dead, d[1], d[2]}
end
end

-- ARGV[4] now, ARGV[5] epoch, ARGV[6] source visibility, ARGV[7..]: n, then per dead letter its
-- field count and fields. The second step of a dead letter whose queue is on another shard.
if op == 'deadput' then
function ops.deadput()
    local now, n, i = num(ARGV[4]), num(ARGV[7]), 8
    local list = {}
    for j = 1, n do
        local c = num(ARGV[i])
        local kv = {}
        for x = 1, c do kv[x] = ARGV[i + x] end
        i = i + c + 1
        list[#list + 1] = {0, kv}
    end
    local d = dead_store(K, chan, list, now, ARGV[5], ARGV[6])
    return {d[1], d[2]}
end
end

-- ARGV[4] now, ARGV[5] reader ('' none), ARGV[6] '@' .. after ('' none), ARGV[7] limit, ARGV[8]
-- max_bytes (-1: none). Reply: {seq, more, messages}.
if op == 'read' then
function ops.read()
    local m = load_meta(K)
    if m == nil then return fail('ENOENT') end
    if m.queue then return fail('EKIND') end
    local now, reader, after, limit, maxb =
        num(ARGV[4]), ARGV[5], ARGV[6], num(ARGV[7]), num(ARGV[8])
    retain(m, now)
    local gone = redis.call('ZRANGEBYSCORE', K.used, '-inf', now - m.cursor_idle)
    for _, g in ipairs(gone) do
        redis.call('HDEL', K.cur, g)
        redis.call('ZREM', K.used, g)
    end
    local from, has_cursor = 0, false
    if after ~= '' then
        after = string.sub(after, 2) -- the engine sends '@' .. after, so that '' is an id too
        if #after ~= 16 or not string.match(after, '^[0-9a-f]+$') then return fail('EINVAL') end
        from = tonumber(after, 16)
    elseif reader ~= '' then
        local c = redis.call('HGET', K.cur, reader)
        if c then
            from = num(c)
            has_cursor = true
            redis.call('ZADD', K.used, now, reader)
        end
    end
    local out, more, bytes, last = {}, 0, 0, from
    if from < 9007199254740992 then
        local start = '(' .. sid(from)
        local done = false
        while not done do
            local r = redis.call('XRANGE', K.s, start, '+', 'COUNT', limit + 1)
            for _, e in ipairs(r) do
                start = '(' .. e[1]
                if #out >= limit then
                    more = 1
                    done = true
                    break
                end
                local f = fields_of(e)
                if not expired(f, now) then
                    local size = size_of(e)
                    if #out > 0 and maxb >= 0 and (size > maxb or bytes > maxb - size) then
                        more = 1
                        done = true
                        break
                    end
                    bytes = bytes + size
                    last = seq_of(e)
                    out[#out + 1] = {hexid(last), e[2], 0, '0'}
                end
            end
            if #r < limit + 1 then done = true end
        end
    end
    if #out > 0 and after == '' and reader ~= '' then
        redis.call('HSET', K.cur, reader, fmt(last))
        redis.call('ZADD', K.used, now, reader)
    end
    return {m.seq, more, out}
end
end

if op == 'clear' then
function ops.clear()
    if load_meta(K) == nil then return fail('ENOENT') end
    local n = redis.call('XLEN', K.s)
    for _, key in ipairs({K.s, K.ready, K.timed, K.att, K.own}) do redis.call('DEL', key) end
    return n
end
end

-- ARGV[4] before (<= 0: none by age), ARGV[5] max_count (-1: no bound).
if op == 'evict' then
function ops.evict()
    local m = load_meta(K)
    if m == nil then return fail('ENOENT') end
    local before, maxc, n = num(ARGV[4]), num(ARGV[5]), 0
    if before > 0 then
        local start = '-'
        while true do
            local r = redis.call('XRANGE', K.s, start, '+', 'COUNT', 256)
            if #r == 0 then break end
            for _, e in ipairs(r) do
                start = '(' .. e[1]
                local f = fields_of(e)
                if tonumber(f.t) < before then n = n + unlink(m, e[1]) end
            end
        end
    end
    if maxc >= 0 then
        local extra = redis.call('XLEN', K.s) - maxc
        if extra > 0 then
            for _, e in ipairs(redis.call('XRANGE', K.s, '-', '+', 'COUNT', extra)) do
                n = n + unlink(m, e[1])
            end
        end
    end
    return n
end
end

-- ARGV[4..] ids (16 hex digits, checked by the engine).
if op == 'remove' then
function ops.remove()
    local m = load_meta(K)
    if m == nil then return fail('ENOENT') end
    local n = 0
    for i = 4, #ARGV do
        local seq = tonumber(ARGV[i], 16)
        if seq and seq < 9007199254740992 then n = n + unlink(m, sid(seq)) end
    end
    return n
end
end

if op == 'position' then
function ops.position()
    local m = load_meta(K)
    if m == nil then return fail('ENOENT') end
    return m.seq
end
end

-- ---- presence: `pres` hash client -> user, `presx` zset client -> when the entry expires ------
-- Each node sets its own subscribers' entries again well before they expire, so the entries of a
-- node that died go once their time passes. A new entry and a removed one publish a join or a
-- leave ("j" / "l", NUL, client, NUL, user) on the channel's event channel when it has join_leave.

-- The channel's join_leave flag; ENOENT when the channel does not exist.
local function pres_meta()
    local v = redis.call('HMGET', K.meta, 'kind', 'join_leave')
    if not v[1] then error({sl = 'ENOENT'}) end
    return v[2] == '1'
end

local function pres_event(jl, what, client, user)
    if jl then redis.call('PUBLISH', evchan(chan), what .. '\0' .. client .. '\0' .. user) end
end

-- Drops up to `limit` (nil: every) entries expired by now, publishing their leaves.
local function pres_expire(jl, now, limit)
    local gone
    if limit then
        gone = redis.call('ZRANGEBYSCORE', K.presx, '-inf', fmt(now), 'LIMIT', 0, limit)
    else
        gone = redis.call('ZRANGEBYSCORE', K.presx, '-inf', fmt(now))
    end
    for _, client in ipairs(gone) do
        local user = redis.call('HGET', K.pres, client)
        redis.call('HDEL', K.pres, client)
        redis.call('ZREM', K.presx, client)
        if user then pres_event(jl, 'l', client, user) end
    end
end

-- ARGV[4] now, ARGV[5] client, ARGV[6] user, ARGV[7] seconds the entry lives. 1 when it is new.
if op == 'pset' then
function ops.pset()
    local jl = pres_meta()
    local now, client, user, ttl = num(ARGV[4]), ARGV[5], ARGV[6], num(ARGV[7])
    -- A few expired entries go on every set: live nodes set theirs every few seconds, so a dead
    -- node's are dropped (and their leaves sent) even when nobody asks for the list.
    pres_expire(jl, now, 16)
    local new = redis.call('HSET', K.pres, client, user)
    redis.call('ZADD', K.presx, fmt(now + ttl), client)
    -- Both keys outlive their newest entry, and go with it when every node stopped setting them.
    local keep = math.ceil(ttl) + 60
    for _, key in ipairs({K.pres, K.presx}) do
        if redis.call('TTL', key) < keep then redis.call('EXPIRE', key, keep) end
    end
    if new == 1 then pres_event(jl, 'j', client, user) end
    return new
end
end

-- ARGV[4] client. 1 when it was there.
if op == 'pdel' then
function ops.pdel()
    local jl = pres_meta()
    local client = ARGV[4]
    local user = redis.call('HGET', K.pres, client)
    redis.call('ZREM', K.presx, client)
    if not user then return 0 end
    redis.call('HDEL', K.pres, client)
    pres_event(jl, 'l', client, user)
    return 1
end
end

-- ARGV[4] now. The live entries as client, user pairs (expired ones are dropped first).
if op == 'pget' then
function ops.pget()
    local jl = pres_meta()
    pres_expire(jl, num(ARGV[4]), nil)
    return redis.call('HGETALL', K.pres)
end
end

-- At start on every shard: the key layout's version; a newer one than this build's is refused.
if op == 'format' then
function ops.format()
    local t = redis.call('TYPE', KEYS[1])['ok']
    if t == 'none' then
        redis.call('SET', KEYS[1], FORMAT)
        return FORMAT
    end
    if t ~= 'string' then return fail('EFORMAT') end
    local v = tonumber(redis.call('GET', KEYS[1]))
    if v == nil then return fail('EFORMAT') end
    if v > FORMAT then return fail('EFORMATVERSION') end
    return v
end
end

local f = ops[op]
if f == nil then return fail('EINVAL') end
local ok, res = pcall(f)
if ok then return res end
if type(res) == 'table' and res.sl then return fail(res.sl) end
-- A Redis command refused (a key of the wrong type written by hand, say): no details leave.
-- Redis refusing a write (out of memory, a replica) passes on its code alone.
local text = type(res) == 'table' and res.err or res
if type(text) == 'string' then
    local code = string.match(text, '^(%u+)')
    if code == 'OOM' or code == 'READONLY' or code == 'BUSY' or code == 'LOADING' then
        return fail(code)
    end
end
return fail('EFORMAT')
