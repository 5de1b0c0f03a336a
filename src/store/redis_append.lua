-- The Redis engine's APPEND, a script of its own (src/store/redis_engine.c runs it with EVALSHA):
-- writes are the hot path, so this one does only what a write needs, with as few Redis calls as
-- the rules allow (settings read once, the sequence number written once per batch). Its rules are
-- those of append_one in redis_scripts.lua (dead letters use that one); keep them the same.
--
-- KEYS[1] the channel's base key `<prefix>:{<id>}`
-- ARGV[1] the key prefix, ARGV[2] the channel id, ARGV[3] now, ARGV[4] n, then per message:
-- flags (bit i: field TAGS[i] present), idempotency key ('' none), not_before, then the present
-- fields' values in TAGS order.
-- Reply: {last seq, then per message its seq and 1 when its key repeated (nothing stored)}, or an
-- error reply ENOENT, EFULL, EFORMAT (a key of the wrong type, a garbage setting).

local TAGS = {'t', 'e', 's', 'd', 'm', 'c', 'r', 'p', 'o', 'x'}

local function run()
    local base, prefix, chan = KEYS[1], ARGV[1], ARGV[2]
    local meta, s = base .. ':meta', base .. ':s'
    local v = redis.call('HMGET', meta, 'kind', 'seq', 'max_messages', 'rcount', 'rage',
                         'dedup_window')
    if not v[1] then return redis.error_reply('ENOENT') end
    local queue = v[1] == '0'
    local seq = tonumber(v[2])
    local maxm, rcount, rage = tonumber(v[3] or '0'), tonumber(v[4] or '0'), tonumber(v[5] or '0')
    local window = tonumber(v[6] or '0')
    local now, n = tonumber(ARGV[3]), tonumber(ARGV[4])
    if (not queue and v[1] ~= '1') or seq == nil or seq < 0 or seq ~= math.floor(seq) or
        maxm == nil or rcount == nil or rage == nil or window == nil or now == nil or n == nil then
        return redis.error_reply('EFORMAT')
    end
    if not (window > 0) then window = 120 end
    if queue and maxm > 0 and redis.call('XLEN', s) + n > maxm then
        return redis.error_reply('EFULL')
    end
    local evchan = prefix .. ':ev:{' .. chan .. '}'

    -- Topic retention: count, then age from the oldest, stopping at the first young message.
    local function retain()
        if rcount > 0 then redis.call('XTRIM', s, 'MAXLEN', rcount) end
        if rage > 0 then
            while true do
                local r = redis.call('XRANGE', s, '-', '+', 'COUNT', 16)
                if #r == 0 then return end
                for _, e in ipairs(r) do
                    local t
                    local kv = e[2]
                    for i = 1, #kv, 2 do if kv[i] == 't' then t = tonumber(kv[i + 1]) end end
                    if t == nil then error('EFORMAT') end
                    if not (t < now - rage) then return end
                    redis.call('XDEL', s, e[1])
                end
            end
        end
    end

    local out, i, expired_keys = {0}, 5, false
    local dd, ddx = base .. ':dd', base .. ':ddx'
    local stored = false
    for _ = 1, n do
        local flags, key, nb = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2])
        if flags == nil or nb == nil then return redis.error_reply('EFORMAT') end
        i = i + 3
        local kv = {}
        for b = 1, #TAGS do
            if flags % 2 == 1 then
                kv[#kv + 1] = TAGS[b]
                kv[#kv + 1] = ARGV[i]
                i = i + 1
            end
            flags = math.floor(flags / 2)
        end
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
                if dup == nil then return redis.error_reply('EFORMAT') end
            end
        end
        if dup then
            out[#out + 1] = dup
            out[#out + 1] = 1
        else
            if not queue and (rcount > 0 or rage > 0) then retain() end
            if maxm > 0 and not queue then
                local after = redis.call('XLEN', s) + 1
                if not queue and rcount > 0 and after > rcount then after = rcount end
                if after > maxm then
                    if stored then redis.call('HSET', meta, 'seq', string.format('%.17g', seq)) end
                    return redis.error_reply('EFULL')
                end
            end
            seq = seq + 1
            local hx = string.format('%016x', seq)
            redis.call('XADD', s, string.format('%.17g', seq) .. '-0', unpack(kv))
            stored = true
            if queue then
                if nb > now then
                    redis.call('ZADD', base .. ':timed', nb, hx)
                else
                    redis.call('ZADD', base .. ':ready', seq, hx)
                end
            elseif rcount > 0 or rage > 0 then
                retain()
            end
            local ev = {'wi16:', hx}
            for j = 1, #kv, 2 do ev[#ev + 1] = kv[j] .. #kv[j + 1] .. ':' .. kv[j + 1] end
            redis.call('PUBLISH', evchan, table.concat(ev))
            if key ~= '' then
                redis.call('HSET', dd, key, string.format('%.17g', seq))
                redis.call('ZADD', ddx, now + window, key)
            end
            out[#out + 1] = seq
            out[#out + 1] = 0
        end
    end
    if stored then redis.call('HSET', meta, 'seq', string.format('%.17g', seq)) end
    out[1] = seq
    return out
end

local ok, res = pcall(run)
if ok then return res end
-- A refused command (a key of the wrong type written by hand) or a garbage value: no details.
return redis.error_reply('EFORMAT')
