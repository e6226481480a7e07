#!lua name=wsgate
-- wsgate's Redis Function library: publishing with history (issue 10). One
-- FCALL assigns a channel's next offset, stores the message in the channel's
-- stream and PUBLISHes it in an envelope, atomically, so a subscriber that sees
-- offset N knows the stream holds N (until trimmed or expired).
--
-- The library name stays "wsgate" in every version so that a newer file can be
-- loaded with FUNCTION LOAD REPLACE (REPLACE only replaces a same-named
-- library; a versioned name would need DELETE + LOAD, a window in which FCALL
-- fails). The version lives in wsgate_version: load when FCALL_RO
-- wsgate_version fails, REPLACE when it returns another number, else nothing.
--
-- Keys, for channel name C (the pub/sub name, prefix included, e.g. gw:room:1):
--   {C}:meta    hash: epoch (string), offset (integer, last assigned),
--               lineage (the master_replid the epoch was written under)
--   {C}:stream  stream; entry ID <offset>-0, fields: offset, payload
-- The hash tag {C} puts both keys in C's Redis Cluster slot. Both keys expire
-- TTL seconds after the last publish; losing the hash (TTL, FLUSHALL, restart
-- without persistence) makes the next publish start a fresh epoch at offset 1.
--
-- THE EPOCH RULE (issue 16; docs/RELIABILITY.md "Redis data loss"): an epoch
-- lives only as long as the dataset lineage it was written under, and that
-- lineage is the serving Redis's master_replid (INFO replication). Redis makes
-- a new replication ID whenever a dataset's history may fork: a process
-- that starts as a master (from an RDB dump, an AOF, or nothing), a replica
-- promoted by Sentinel, Cluster or REPLICAOF NO ONE; and also when a master
-- without a backlog takes its first replica. Replicas share their master's
-- ID. A dataset that came back older (a dump from before the last writes,
-- AOF everysec losing its last second, a promoted replica that never saw the
-- old master's last acked writes) therefore always carries another ID than
-- the one its meta was written under, and then:
--   * wsgate_publish starts a new epoch (offsets from 1, the old stream
--     deleted) instead of handing out offsets the lost writes had, so no
--     (epoch, offset) is ever given to two messages;
--   * wsgate_history answers such an epoch "not reachable" (its entries are
--     real, but it cannot vouch that none after them were lost), so a client
--     recovery is recovered:false while a node's own repair still reads the
--     entries back.
-- Behind the rule, nodes check (gateway/repair.c): one that reads Redis's
-- offset below what it delivered in the same epoch, or meets an offset again
-- with other content, calls wsgate_retire_epoch.
-- The new process cannot tell a complete dump (SHUTDOWN SAVE) from an older
-- one, so a clean restart costs the same: each channel with history changes
-- epoch once, at its next publish. Meta written by library version 2 has no
-- lineage and starts a new epoch at its next publish too.
--
-- Envelope PUBLISHed to C (docs/PROTOCOL.md, common/envelope.h):
--   "\255wsgate1 " <offset> " " <epoch> "\n" <payload>
-- With a 5th argument "shard" (Redis Cluster mode, issue 19; VERSION 6) the
-- envelope goes out with SPUBLISH instead: sharded subscribers see nothing a
-- PUBLISH sends. C holds no hash tag (the gateway refuses names with braces in
-- cluster mode), so C, {C}:meta and {C}:stream share one slot.

local VERSION = 7
local DEFAULT_HISTORY = 1000
local DEFAULT_TTL = 86400
local MAX_HISTORY = 1000000
local DEFAULT_LIMIT = 100
local MAX_LIMIT = 10000
local DEFAULT_MAX_BYTES = 1048576

-- A strict non-negative integer argument; absent or "" gives dflt.
local function int_arg(v, name, dflt, lo, hi)
    if v == nil or v == '' then
        return dflt
    end
    if not string.match(v, '^%d+$') then
        return error('ERR wsgate: ' .. name .. ' must be a non-negative integer')
    end
    local n = tonumber(v)
    if n < lo or n > hi then
        return error('ERR wsgate: ' .. name .. ' out of range ' .. lo .. '..' .. hi)
    end
    return n
end

-- Both keys must be the ones derived from the channel: a caller that gets
-- them wrong would publish offsets that no reader finds.
local function check_keys(keys, channel)
    if channel == nil or channel == '' then
        return error('ERR wsgate: channel name required')
    end
    if keys[1] ~= '{' .. channel .. '}:meta' or keys[2] ~= '{' .. channel .. '}:stream' then
        return error('ERR wsgate: keys must be {' .. channel .. '}:meta and {' .. channel .. '}:stream')
    end
end

local B36 = '0123456789abcdefghijklmnopqrstuvwxyz'

local function base36(n)
    local s = ''
    repeat
        local d = n % 36
        s = string.sub(B36, d + 1, d + 1) .. s
        n = (n - d) / 36
    until n == 0
    return s
end

-- A new epoch: server time in microseconds plus a math.random part, base 36
-- (at most 15 characters of [0-9a-z]). The time is what makes a channel's
-- epochs differ: a new one is made only after the old hash is gone, so later.
-- The random part only lowers the odds of a repeat when the clock went back;
-- Redis seeds its Lua PRNG itself, so it is not unpredictable (observed: the
-- same value in separate calls).
local function new_epoch()
    local t = redis.call('TIME')
    local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
    return base36(us) .. base36(math.random(0, 36 * 36 * 36 * 36 - 1))
end

-- The serving Redis's replication ID: the dataset lineage of THE EPOCH RULE
-- above. Read on every call, not cached: a promotion changes it without a
-- restart. INFO is allowed in scripts (flags loading, stale; not noscript).
local function current_lineage()
    local id = string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)')
    if not id then
        return error('ERR wsgate: no master_replid in INFO replication')
    end
    return id
end

-- True when meta's epoch was written under the serving dataset's lineage.
local function lineage_holds(meta)
    return redis.call('HGET', meta, 'lineage') == current_lineage()
end

local function publish(keys, args)
    local channel, payload = args[1], args[2]
    check_keys(keys, channel)
    if payload == nil then
        return error('ERR wsgate: payload required')
    end
    local history = int_arg(args[3], 'history size', DEFAULT_HISTORY, 1, MAX_HISTORY)
    local ttl = int_arg(args[4], 'ttl', DEFAULT_TTL, 1, 315360000)
    local meta, stream = keys[1], keys[2]

    local lineage = current_lineage()
    local epoch, written_under = unpack(redis.call('HMGET', meta, 'epoch', 'lineage'))
    if not epoch or written_under ~= lineage then
        epoch = new_epoch()
        redis.call('HSET', meta, 'epoch', epoch, 'offset', 0, 'lineage', lineage)
        -- Entries that outlived their metadata, or their lineage, belong to
        -- the lost epoch.
        redis.call('DEL', stream)
    end
    local offset = string.format('%d', redis.call('HINCRBY', meta, 'offset', 1))
    redis.call('XADD', stream, 'MAXLEN', '~', history, offset .. '-0',
               'offset', offset, 'payload', payload)
    redis.call('EXPIRE', meta, ttl)
    redis.call('EXPIRE', stream, ttl)
    local verb = 'PUBLISH'
    if args[5] == 'shard' then
        verb = 'SPUBLISH'
    elseif args[5] ~= nil and args[5] ~= '' then
        return error('ERR wsgate: the 5th argument is "shard" or nothing')
    end
    local receivers = redis.call(verb, channel,
                                 '\255wsgate1 ' .. offset .. ' ' .. epoch .. '\n' .. payload)
    return { tonumber(offset), epoch, receivers }
end

-- ---- history reads (issue 15: a read costs Redis about its byte budget) ----

-- Most entries one step of a read copies into Lua. A read walks the stream in
-- steps and stops at its byte budget, so its cost follows max_bytes, not
-- limit: one XRANGE of `limit` entries copied them all before the cap was
-- applied (1000 entries of 64 KB: 1.1 s of Redis for a 1 MiB reply). The
-- first step takes one entry; later steps take only as many entries as the
-- budget left could hold at the largest payload seen so far, and never more
-- than STEP_MAX. So a read copies at most max_bytes + STEP_MAX x (largest
-- payload) bytes, and one entry past the budget when payload sizes are even.
local STEP_MAX = 8

-- The stream's entries after `from` (an exclusive XRANGE bound, or '+' with
-- newest_first), in walking order, at most limit and about max_bytes of
-- payload (the first entry always).
local function walk(stream, newest_first, from, limit, max_bytes)
    local rows, bytes, biggest = {}, 0, 0
    while #rows < limit and (#rows == 0 or bytes < max_bytes) do
        local step = 1
        if biggest > 0 then
            step = math.floor((max_bytes - bytes) / biggest)
            step = math.max(1, math.min(step, STEP_MAX, limit - #rows))
        end
        local got
        if newest_first then
            got = redis.call('XREVRANGE', stream, from, '-', 'COUNT', step)
        else
            got = redis.call('XRANGE', stream, from, '+', 'COUNT', step)
        end
        for _, row in ipairs(got) do
            -- row = { id, { 'offset', o, 'payload', p } }
            local p = row[2][4]
            if #rows > 0 and bytes + #p > max_bytes then
                return rows
            end
            bytes = bytes + #p
            biggest = math.max(biggest, #p)
            rows[#rows + 1] = row
            from = '(' .. row[1]
        end
        if #got < step then
            break
        end
    end
    return rows
end

-- Arguments: channel, since, limit, max_bytes.
--   since      last offset the caller has; "" asks for the latest entries
--   limit      at most this many entries (default 100, 1..10000)
--   max_bytes  stop adding entries once their payloads reach this many bytes
--              (default 1 MiB); the first entry always comes, so a caller
--              paging through big messages always makes progress. For the
--              latest entries the newest that fit are returned.
-- Reply: { epoch ("" when the channel has no metadata), current offset,
-- reachable (1: the entries start right after since, or nothing is missing;
-- 0: entries after since were trimmed or expired, since is beyond the
-- current offset, or the epoch's lineage is not the serving dataset's (THE
-- EPOCH RULE); always 1 for the latest entries), { offset1, payload1,
-- offset2, payload2, ... } }, oldest first. Page by calling again with the
-- last offset returned, until it reaches the current offset.
local function history(keys, args)
    check_keys(keys, args[1])
    local latest = args[2] == nil or args[2] == ''
    local since = int_arg(args[2], 'since', 0, 0, 9007199254740991)
    local limit = int_arg(args[3], 'limit', DEFAULT_LIMIT, 1, MAX_LIMIT)
    local max_bytes = int_arg(args[4], 'max_bytes', DEFAULT_MAX_BYTES, 1, 1073741824)
    local meta, stream = keys[1], keys[2]

    local epoch = redis.call('HGET', meta, 'epoch')
    if not epoch then
        return { '', 0, (latest or since == 0) and 1 or 0, {} }
    end
    local current = tonumber(redis.call('HGET', meta, 'offset'))
    if not latest and since > current then
        return { epoch, current, 0, {} }
    end
    if not latest and since == current then
        return { epoch, current, lineage_holds(meta) and 1 or 0, {} }
    end
    local rows
    if latest then
        rows = walk(stream, true, '+', limit, max_bytes)
    else
        rows = walk(stream, false, '(' .. string.format('%d', since) .. '-0', limit, max_bytes)
    end
    local flat, n = {}, #rows
    for i, row in ipairs(rows) do
        local at = latest and (n - i + 1) or i
        flat[2 * at - 1] = tonumber(row[2][2])
        flat[2 * at] = row[2][4]
    end
    local reachable = 1
    if not latest then
        reachable = (#flat > 0 and flat[1] == since + 1 and lineage_holds(meta)) and 1 or 0
    end
    return { epoch, current, reachable, flat }
end

-- Arguments: channel, epoch, below. A node that saw the channel's epoch go
-- back (a read answered an offset below `below`, one it had delivered) or
-- hand one offset out twice (below "") retires the epoch: both keys are
-- deleted, so the next publish starts a new epoch and a recovery from the old
-- one is recovered:false, as after any loss of the metadata. Only while the
-- meta still holds that epoch (and an offset under below): nodes that saw the
-- same thing retire it once, and a node that read a lagging copy cannot
-- retire a healthy epoch on the master. Reply: 1 retired, 0 not.
local function retire_epoch(keys, args)
    check_keys(keys, args[1])
    local epoch = args[2]
    if epoch == nil or epoch == '' then
        return error('ERR wsgate: epoch required')
    end
    local below = int_arg(args[3], 'below', 0, 0, 9007199254740991)
    local meta, stream = keys[1], keys[2]
    local have, offset = unpack(redis.call('HMGET', meta, 'epoch', 'offset'))
    if have ~= epoch or (below > 0 and tonumber(offset) >= below) then
        return 0
    end
    redis.call('DEL', meta, stream)
    return 1
end

-- ---- presence (issue 20; docs/PROTOCOL.md "Presence") ----
--
-- Keys, for channel name C, all under C's hash tag so they share its Cluster
-- slot (one FCALL touches only one slot):
--   {C}:presence        hash: member -> user .. "\n" .. info (JSON or "")
--                       member is "<node id>/<incarnation>/<session id>"
--   {C}:presence:users  hash: user (the token's sub) -> connections it has
--   {C}:events          stream (MAXLEN ~ 10000) for backends: event
--                       occupied | vacated | join | leave, user
-- Anonymous members (user "") count as connections, not as users. Counts are
-- HLEN of the two hashes: O(1), exact under reconnects and several tabs.
-- No entry expires and no node refreshes them: an entry is valid while its
-- node incarnation is alive (<ns>inc:<id>/<inc>, EX 5, refreshed every
-- second; <ns> is wsgate:presence: with one Redis, {wsgate}:presence: on a
-- cluster, gateway/presence.h). The node also keeps <ns>node:<id>/<inc> (a set
-- of the channels it has members in, outside C's slot, so written by a
-- separate command): a surviving node that sees the incarnation gone walks
-- that set, one channel (and one FCALL of wsgate_presence_purge, in that
-- channel's slot) at a time.
-- The last argument of join, leave and purge, "shard" (Redis Cluster mode,
-- VERSION 7), sends the subscribers' events with SPUBLISH, as wsgate_publish.

local MAX_INFO = 1024
local MAX_PAGE = 1000
local EVENTS_MAXLEN = 10000
-- What nodes recognise on the channel and deliver to subscribers that asked
-- for presence events (docs/PROTOCOL.md "The envelope's reserved form").
local EVENT_TAG = '\254wsgate-presence1\n'

local function presence_keys(keys, channel, n)
    if channel == nil or channel == '' then
        return error('ERR wsgate: channel name required')
    end
    local tag = '{' .. channel .. '}'
    if keys[1] ~= tag .. ':presence' or keys[2] ~= tag .. ':presence:users' or
       (n == 3 and keys[3] ~= tag .. ':events') then
        return error('ERR wsgate: keys must be ' .. tag .. ':presence, ' .. tag .. ':presence:users' ..
                     (n == 3 and (', ' .. tag .. ':events') or ''))
    end
    return keys[1], keys[2], keys[3]
end

-- PUBLISH, or SPUBLISH when mode is "shard" (sharded subscribers see nothing
-- a PUBLISH sends).
local function publish_verb(mode)
    if mode == 'shard' then
        return 'SPUBLISH'
    elseif mode ~= nil and mode ~= '' then
        return error('ERR wsgate: the mode argument is "shard" or nothing')
    end
    return 'PUBLISH'
end

-- A user's join or leave: always in the events stream (backends), and on
-- the channel (subscribers, with verb) unless the channel is over max members.
local function user_event(channel, stream, kind, user, info, publish, verb)
    redis.call('XADD', stream, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'event', kind, 'user', user)
    if publish then
        local body = '{"type":"' .. kind .. '","user":' .. cjson.encode(user)
        if info ~= nil and info ~= '' then
            body = body .. ',"info":' .. info
        end
        redis.call(verb, channel, EVENT_TAG .. body .. '}')
    end
end

local function channel_event(stream, kind)
    redis.call('XADD', stream, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'event', kind)
end

-- Crossing --presence-max-members: said once each way on the channel.
local function limit_event(channel, limited, max, verb)
    redis.call(verb, channel, EVENT_TAG .. '{"type":"presence_limited","limited":' ..
               (limited and 'true' or 'false') .. ',"max":' .. max .. '}')
end

local function user_of(v)
    return string.match(v, '^([^\n]*)')
end

-- Removes member (value v) and its user's count. Returns 1 when the user's
-- last connection left (0 for anonymous members and other connections).
local function drop_member(set, users, member, v)
    redis.call('HDEL', set, member)
    local user = user_of(v)
    if user == '' then
        return 0
    end
    if redis.call('HINCRBY', users, user, -1) <= 0 then
        redis.call('HDEL', users, user)
        return 1
    end
    return 0
end

-- Every transition is decided here, atomically: occupied when the first
-- connection anywhere joins, vacated when the last one leaves, join and leave
-- when a user's first connection joins and its last one leaves, whichever
-- nodes race. Anonymous connections count, but make no join or leave.

-- Arguments: channel, member, user ("" anonymous), info ("" or JSON), max
-- members (0: no limit), mode ("shard" or nothing). Reply: { added (0: the member was there), user
-- joined, connections, users }.
local function presence_join(keys, args)
    local set, users, stream = presence_keys(keys, args[1], 3)
    local channel, member, user, info = args[1], args[2], args[3] or '', args[4] or ''
    local max = int_arg(args[5], 'max members', 0, 0, 1000000000)
    local verb = publish_verb(args[6])
    if member == nil or member == '' then
        return error('ERR wsgate: member required')
    end
    if string.find(user, '\n', 1, true) then
        return error('ERR wsgate: user must not contain a newline')
    end
    if #info > MAX_INFO then
        return error('ERR wsgate: info over ' .. MAX_INFO .. ' bytes')
    end
    if redis.call('HSETNX', set, member, user .. '\n' .. info) == 0 then
        return { 0, 0, redis.call('HLEN', set), redis.call('HLEN', users) }
    end
    local conns = redis.call('HLEN', set)
    if conns == 1 then
        channel_event(stream, 'occupied')
    end
    local joined = 0
    if user ~= '' and redis.call('HINCRBY', users, user, 1) == 1 then
        joined = 1
        user_event(channel, stream, 'join', user, info, max == 0 or conns <= max, verb)
    end
    if max > 0 and conns == max + 1 then
        limit_event(channel, true, max, verb)
    end
    return { 1, joined, conns, redis.call('HLEN', users) }
end

-- After removing members: the leaves of users gone, the limit crossed back,
-- vacated when nobody is left.
local function after_removal(channel, set, stream, before, gone, max, verb)
    local conns = redis.call('HLEN', set)
    for _, g in ipairs(gone) do
        user_event(channel, stream, 'leave', g, nil, max == 0 or before <= max, verb)
    end
    if max > 0 and before > max and conns <= max then
        limit_event(channel, false, max, verb)
    end
    if conns == 0 and before > 0 then
        channel_event(stream, 'vacated')
    end
    return conns
end

-- Arguments: channel, member, max members, mode. Reply: { removed, user
-- left, connections, users }.
local function presence_leave(keys, args)
    local set, users, stream = presence_keys(keys, args[1], 3)
    local max = int_arg(args[3], 'max members', 0, 0, 1000000000)
    local verb = publish_verb(args[4])
    local v = redis.call('HGET', set, args[2] or '')
    if not v then
        return { 0, 0, redis.call('HLEN', set), redis.call('HLEN', users) }
    end
    local before = redis.call('HLEN', set)
    local left = drop_member(set, users, args[2], v)
    local conns = after_removal(args[1], set, stream, before, left == 1 and { user_of(v) } or {}, max, verb)
    return { 1, left, conns, redis.call('HLEN', users) }
end

-- Arguments: channel, prefix (a departed incarnation's members:
-- "<node id>/<incarnation>/"), max members, mode. Walks the hash with HSCAN MATCH
-- (the prefix's glob characters escaped): O(members), once per crash.
-- Whoever removes an entry reports it, so of nodes purging at once each
-- departed user leaves once. Reply: { removed, connections, users,
-- { user whose last connection was removed, ... } }.
local function presence_purge(keys, args)
    local set, users, stream = presence_keys(keys, args[1], 3)
    local prefix = args[2] or ''
    local max = int_arg(args[3], 'max members', 0, 0, 1000000000)
    local verb = publish_verb(args[4])
    if prefix == '' then
        return error('ERR wsgate: prefix required')
    end
    local pattern = string.gsub(prefix, '([%*%?%[%]\\])', '\\%1') .. '*'
    local before = redis.call('HLEN', set)
    local removed, gone, cursor = 0, {}, '0'
    repeat
        local r = redis.call('HSCAN', set, cursor, 'MATCH', pattern, 'COUNT', 256)
        cursor = r[1]
        for i = 1, #r[2], 2 do
            if redis.call('HEXISTS', set, r[2][i]) == 1 then
                removed = removed + 1
                if drop_member(set, users, r[2][i], r[2][i + 1]) == 1 then
                    gone[#gone + 1] = user_of(r[2][i + 1])
                end
            end
        end
    until cursor == '0'
    local conns = after_removal(args[1], set, stream, before, gone, max, verb)
    return { removed, conns, redis.call('HLEN', users), gone }
end

-- Arguments: channel. Reply: { connections, users }.
local function presence_stats(keys, args)
    local set, users = presence_keys(keys, args[1], 2)
    return { redis.call('HLEN', set), redis.call('HLEN', users) }
end

-- Arguments: channel, cursor ("" or "0" for the first page), limit
-- (1..1000). Reply: { next cursor ("0": last page), connections, users,
-- { member1, value1, ... } } (HSCAN: a member present for the whole walk is
-- returned at least once; a page may hold somewhat more or fewer than limit).
local function presence_members(keys, args)
    local set, users = presence_keys(keys, args[1], 2)
    local cursor = args[2]
    if cursor == nil or cursor == '' then
        cursor = '0'
    end
    if not string.match(cursor, '^%d+$') then
        return error('ERR wsgate: cursor must be a non-negative integer')
    end
    local limit = int_arg(args[3], 'limit', 100, 1, MAX_PAGE)
    local r = redis.call('HSCAN', set, cursor, 'COUNT', limit)
    return { r[1], redis.call('HLEN', set), redis.call('HLEN', users), r[2] }
end

redis.register_function('wsgate_presence_join', presence_join)
redis.register_function('wsgate_presence_leave', presence_leave)
redis.register_function('wsgate_presence_purge', presence_purge)
redis.register_function{ function_name = 'wsgate_presence_stats', callback = presence_stats,
                         flags = { 'no-writes' } }
redis.register_function{ function_name = 'wsgate_presence_members', callback = presence_members,
                         flags = { 'no-writes' } }
redis.register_function{ function_name = 'wsgate_version',
                         callback = function() return VERSION end,
                         flags = { 'no-writes' } }
redis.register_function('wsgate_publish', publish)
redis.register_function{ function_name = 'wsgate_history', callback = history,
                         flags = { 'no-writes' } }
redis.register_function('wsgate_retire_epoch', retire_epoch)
