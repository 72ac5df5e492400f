package redisstore

import "github.com/redis/go-redis/v9"

// applyScript applies one chunk of a batch: per-user totals, the phase's
// cumulative statistics and the hourly buckets, atomically. It runs at
// most once per (batch, chunk).
//
// Input:
//
//	KEYS[1] -> abgate:{exp:<id>}:keys (SET of the experiment's keys)
//	KEYS[2] -> abgate:{exp:<id>}:events (SET of applied event ids)
//	KEYS[3] -> abgate:{exp:<id>}:metrics (HASH metric name -> code)
//	KEYS[4] -> abgate:{exp:<id>}:batch:<batch id> (SET of applied chunks)
//	KEYS[5] -> abgate:{exp:<id>}:p<n>:variants
//	KEYS[6] -> abgate:{exp:<id>}:p<n>:hours
//	KEYS[7] -> abgate:{exp:<id>}:p<n>:counters
//	KEYS[6+2s], KEYS[7+2s] -> stats and users hash of variant slot s (1..V)
//	KEYS[7+2V+j] -> hourly hash of hour slot j (1..H)
//	KEYS[8+2V+H] -> abgate:{exp:<id>}:drifthours
//	KEYS[8+2V+H+j] -> drift histogram hash of drift hour slot j (1..DH)
//	KEYS[9+2V+H+DH] -> abgate:{exp:<id>}:groups (HASH capped event group
//	                   -> events applied)
//	KEYS[10+2V+H+DH] -> abgate:{exp:<id>}:covphase (HASH data period ->
//	                   salt phase), only with covariates (ARGV[4])
//
//	ARGV[1] -> chunk index within the batch
//	ARGV[2] -> TTL of the batch marker in ms (the dedup window)
//	ARGV[3] -> msgpack array, flat:
//	           V, variant index × V, H, hour × H, M, metric name × M,
//	           C, (variant slot, counter name, increment) × C,
//	           DH, drift hour × DH, D, (drift hour slot, field, increment) × D,
//	           G, groups × G; a group is one user of one variant:
//	           variant slot, unit hex, E, (metric slot, dx, dy, hour slot,
//	           event id or "", group or "", cap) × E, in hour order; an
//	           entry with an event id is applied only if the id is new to
//	           the experiment, an entry with a group and cap > 0 only while
//	           the group has fewer than cap applied entries (an event with
//	           neither is a plain delta), an entry with the id "=" (a
//	           segment copy) only if the entry before it was applied;
//	           metrics whose name holds "@" are segment statistics and get
//	           no hourly buckets
//	ARGV[4] -> "1": keep CUPED covariates (experiments.Batch.Covariates);
//	           "2": covariates without metrics (rollout.cohort "new"
//	           without CUPED): only the first-exposure record and the
//	           fresh sums, no copies in s<k>:z; with either:
//	ARGV[5] -> the batch's salt phase (Covariates.SaltPhase)
//	ARGV[6] -> the history TTL in ms (Covariates.HistoryTTL)
//	ARGV[7] -> the experiment's key prefix abgate:{exp:<id>}
//	ARGV[8] -> msgpack array, per metric slot (ARGV[3]'s order): the
//	           metric the history keeps it under ("" for none), source
//	           (experiments.CovariateSource), z without history, lo, hi
//	ARGV[9] -> msgpack array: K, (unit hex, metric, dx, dy) × K, history
//	           of units not analysed (Batch.History; last chunk only)
//	ARGV[10] -> the data period n
//	ARGV[11] -> joint sums (experiments.Batch.Joint), or "" for none:
//	           msgpack array (human metric, judge metric, cut) × P
//
// Output: {1, duplicate events} when applied, {0, 0} when this chunk of
// this batch had already been applied (nothing changed).
//
// Redis does not roll a script back on a runtime error; with the input
// Store.Apply validates and encodes, the only one left is running out of
// memory, so give Redis maxmemory headroom with maxmemory-policy
// noeviction (evicting user state would corrupt the statistics anyway).
//
// A user's state for all metrics is one hash field, so each user costs one
// HGET and one HSET. Its msgpack array holds (code, x, y) per metric,
// for a metric with a covariate z ≠ 0, (−code, z, 0), and, with
// covariates, (0, fresh, 0) (below).
//
// With covariates (the covariate block below): a user's first entry of a
// metric in a period fixes z from their copy in the period's salt phase
// (abgate:{exp:<id>}:s<k>:z), made at the first such entry in the phase
// from their pre-exposure history (abgate:{exp:<id>}:pre:<unit>) as it
// stood before this call, with the period it was made in
// (abgate:{exp:<id>}:s<k>:first); the call's applied entries (segment copies
// excluded) and ARGV[9] are added to the histories, one GET and one SET
// (with the TTL, capped at the experiment's own if it is expiring) per
// user and call. Those keys are not declared in KEYS; they carry the
// experiment's hash tag, so they live in this call's slot (as in
// expireScript).
//
// Fresh sums (with covariates; experiments.Snapshot.Fresh): a user's
// entries in a period also go to the fresh sums when the user was first
// exposed in this period of the salt phase (their copy's period in
// abgate:{exp:<id>}:s<k>:first is this one). That is decided at the
// user's first entry in the period (one HGET of the first-exposure hash
// for a returning user) and kept in the user's state as (0, 1 or 0, 0),
// so later calls read it with the state. Segment statistics and hours
// have no fresh copy. They live in the variant's stats hash as
// "~f:<metric>:<stat>", beside the main sums, so no key is added.
//
// Statistic deltas accumulate in Lua locals and each
// stats hash is read once (HMGET) and written once (HSET) per call, the
// values formatted with %.17g so doubles round-trip exactly. (HINCRBYFLOAT
// would round its result to 17 decimal places: 1.2345e-12 keeps six
// digits.) User totals are packed as msgpack doubles, also exact.
// If the experiment is already expiring (KEYS[1] has a TTL), keys this
// call creates get the same TTL.
//
// Joint sums (ARGV[11]; the "joint" blocks, kept apart from the rest): for
// each pair, a user's contribution to the variant's JointSummary is
// computed from their totals before the group's entries and after them,
// and the difference is added (experiments.JointDelta), so the sums stay
// exact however a user's updates are split into batches and chunks. They
// live in the variant's stats hash as "~j:<human>:<judge>:<stat>" (the
// "~" can't begin a metric name), so no key is added.
var applyScript = redis.NewScript(`
if redis.call('SADD', KEYS[4], ARGV[1]) == 0 then
  return {0, 0}
end
redis.call('PEXPIRE', KEYS[4], ARGV[2])

local a = cmsgpack.unpack(ARGV[3])
local NK = #KEYS
local i = 1
local V = a[i]; i = i + 1
local vid = {}
for s = 1, V do vid[s] = a[i]; i = i + 1 end
local H = a[i]; i = i + 1
local hid = {}
for s = 1, H do hid[s] = a[i]; i = i + 1 end
local M = a[i]; i = i + 1
local mname, mcode, mseg = {}, {}, {}
local dict = redis.call('HGETALL', KEYS[3])
local byname, ncodes = {}, 0
for k = 1, #dict, 2 do byname[dict[k]] = tonumber(dict[k + 1]); ncodes = ncodes + 1 end
for s = 1, M do
  local n = a[i]; i = i + 1
  mname[s] = n
  local c = byname[n]
  if not c then
    ncodes = ncodes + 1
    c = ncodes
    redis.call('HSET', KEYS[3], n, c)
    byname[n] = c
  end
  mcode[s] = c
  mseg[s] = string.find(n, '@', 1, true) ~= nil
end

-- joint: the pairs, their metric codes (nil: no user has that metric
-- yet), and jointOf, one user's contribution to a pair's sums
-- (experiments.JointContribution): JF fields, labelled n, Σh, Σh², Σf,
-- Σf², Σhf, unlabelled N, Σf, Σf², then the agreement cells a00, a01,
-- a10, a11 (judge f > ½, human h > cut).
local jfields = {'n', 'sh', 'sh2', 'sf', 'sf2', 'shf', 'un', 'usf', 'usf2', 'a00', 'a01', 'a10', 'a11'}
local JF = #jfields
local jpairs = {}
if ARGV[11] and ARGV[11] ~= '' then
  local pa = cmsgpack.unpack(ARGV[11])
  for k = 1, #pa, 3 do
    jpairs[#jpairs + 1] = {h = pa[k], f = pa[k + 1], cut = tonumber(pa[k + 2]), hc = byname[pa[k]], fc = byname[pa[k + 1]]}
  end
end
local function jointOf(sx, sy, jp)
  local out = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
  local fy = (jp.fc and sy[jp.fc]) or 0
  if fy == 0 then return out end
  local f = sx[jp.fc] / fy
  local hy = (jp.hc and sy[jp.hc]) or 0
  if hy == 0 then
    out[7] = 1; out[8] = f; out[9] = f * f
    return out
  end
  local h = sx[jp.hc] / hy
  out[1] = 1; out[2] = h; out[3] = h * h; out[4] = f; out[5] = f * f; out[6] = h * f
  local cell = 10
  if f > 0.5 then cell = cell + 2 end
  if h > jp.cut then cell = cell + 1 end
  out[cell] = 1
  return out
end
local jacc = {} -- variant slot -> pair -> JF deltas
local function jointBefore(sx, sy)
  local b = {}
  for p, jp in ipairs(jpairs) do b[p] = jointOf(sx, sy, jp) end
  return b
end
local function jointAfter(vs, sx, sy, before)
  if not jacc[vs] then jacc[vs] = {} end
  for p, jp in ipairs(jpairs) do
    local a = jointOf(sx, sy, jp)
    local d = jacc[vs][p]
    if not d then d = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}; jacc[vs][p] = d end
    for f = 1, JF do d[f] = d[f] + a[f] - before[p][f] end
  end
end

-- CUPED covariates (experiments.Covariates), kept apart from the rest:
-- covZ reads z from the user's copy of their pre-exposure history in the
-- salt phase, which covExpose makes the first time one is needed (a
-- user's first entry in a phase is always new to its period), covAdd
-- queues history increments, covFlush writes them at the end.
local cov = ARGV[4] == '1' or ARGV[4] == '2'
local recordOnly = ARGV[4] == '2'
local covZ, covAdd, covFlush, covFresh
if cov then
  local period = ARGV[10]
  redis.call('HSETNX', KEYS[NK], period, ARGV[5])
  local sp = redis.call('HGET', KEYS[NK], period)
  local zkey = ARGV[7] .. ':s' .. sp .. ':z'
  local fkey = ARGV[7] .. ':s' .. sp .. ':first'
  local hpre = ARGV[7] .. ':pre:'
  local function code(n)
    local c = byname[n]
    if not c then
      ncodes = ncodes + 1
      c = ncodes
      redis.call('HSET', KEYS[3], n, c)
      byname[n] = c
    end
    return c
  end
  local ct = cmsgpack.unpack(ARGV[8])
  local hcode, src, miss, lo, hi = {}, {}, {}, {}, {}
  for s = 1, M do
    local o = (s - 1) * 5
    if ct[o + 1] ~= '' then hcode[s] = code(ct[o + 1]) end
    src[s], miss[s], lo[s], hi[s] = ct[o + 2], ct[o + 3], ct[o + 4], ct[o + 5]
  end
  -- A history (or copy) is msgpack [code, x, y, ...]; parsed, two
  -- tables code -> x and code -> y.
  local function parse(raw)
    local tx, ty = {}, {}
    if raw then
      local st = cmsgpack.unpack(raw)
      for k = 1, #st, 3 do tx[st[k]] = st[k + 1]; ty[st[k]] = st[k + 2] end
    end
    return {tx, ty}
  end
  local copies, pend, fresh = {}, {}, {}
  local function covExpose(unit)
    if copies[unit] then return end
    if recordOnly then
      -- No history is kept, so no copy either: the first-exposure
      -- record alone says whether the unit is new to the phase.
      local f = redis.call('HGET', fkey, unit)
      if not f then redis.call('HSET', fkey, unit, period) end
      fresh[unit] = 0
      if not f or f == period then fresh[unit] = 1 end
      copies[unit] = {{}, {}}
      return
    end
    local raw = redis.call('HGET', zkey, unit)
    if not raw then
      if redis.call('HSETNX', fkey, unit, period) == 1 then
        raw = redis.call('GET', hpre .. unit) or cmsgpack.pack({})
        fresh[unit] = 1
      else
        -- First exposed while only the record was kept (cohort new
        -- without CUPED, then CUPED turned on): nothing of the unit
        -- from before its exposure was kept, so its copy is empty (as
        -- memstore's, made then from an empty history).
        raw = cmsgpack.pack({})
      end
      redis.call('HSET', zkey, unit, raw)
    end
    copies[unit] = parse(raw)
  end
  -- covFresh is 1 when the unit was first exposed in this period (its
  -- entries then also go to the fresh sums), else 0; called once per
  -- user and period, the answer is kept in the user's state.
  covFresh = function(unit)
    covExpose(unit)
    if not fresh[unit] then
      fresh[unit] = 0
      if redis.call('HGET', fkey, unit) == period then fresh[unit] = 1 end
    end
    return fresh[unit]
  end
  -- covZ mirrors experiments.MetricInfo.CovariateZ.
  covZ = function(unit, ms)
    covExpose(unit)
    local c = hcode[ms]
    if not c then return 0 end
    local cp = copies[unit]
    local x, y = cp[1][c] or 0, cp[2][c] or 0
    if src[ms] == 1 then return x end
    if src[ms] == 2 then
      if y > 0 then return math.min(math.max(x / y, lo[ms]), hi[ms]) end
      return miss[ms]
    end
    return 0
  end
  -- The history is read at a user's first increment in the call and
  -- written back once at its end (each increment added in turn, as
  -- memstore does).
  local function add(unit, c, dx, dy)
    local h = pend[unit]
    if not h then
      h = parse(redis.call('GET', hpre .. unit))
      pend[unit] = h
    end
    h[1][c] = (h[1][c] or 0) + dx
    h[2][c] = (h[2][c] or 0) + dy
  end
  covAdd = function(unit, ms, dx, dy)
    if hcode[ms] and not mseg[ms] then add(unit, hcode[ms], dx, dy) end
  end
  covFlush = function()
    local h = cmsgpack.unpack(ARGV[9])
    local j = 2
    for k = 1, h[1] do
      add(h[j], code(h[j + 1]), h[j + 2], h[j + 3])
      j = j + 4
    end
    local ttl = tonumber(ARGV[6])
    local pttl = redis.call('PTTL', KEYS[1])
    if pttl > 0 and pttl < ttl then ttl = pttl end
    for unit, t in pairs(pend) do
      local st, n, ty = {}, 0, t[2]
      for c, x in pairs(t[1]) do
        st[n + 1] = c; st[n + 2] = x; st[n + 3] = ty[c]
        n = n + 3
      end
      redis.call('SET', hpre .. unit, cmsgpack.pack(st), 'PX', ttl)
    end
    for _, k in ipairs({zkey, fkey}) do
      redis.call('SADD', KEYS[1], k)
      if pttl > 0 and redis.call('PTTL', k) == -1 then redis.call('PEXPIRE', k, pttl) end
    end
  end
end

local C = a[i]; i = i + 1
for k = 1, C do
  redis.call('HINCRBY', KEYS[7], vid[a[i]] .. ':' .. a[i + 1], a[i + 2])
  i = i + 3
end

local DK = 8 + 2 * V + H
local DH = a[i]; i = i + 1
local GK = KEYS[DK + DH + 1]
for s = 1, DH do
  redis.call('ZADD', KEYS[DK], a[i], a[i])
  i = i + 1
end
local D = a[i]; i = i + 1
for k = 1, D do
  redis.call('HINCRBY', KEYS[DK + a[i]], a[i + 1], a[i + 2])
  i = i + 3
end

-- NF sums per (variant, metric): n, Σx, Σx², Σy, Σy², Σxy, Σr, Σr²
-- (r = the user's own ratio x/y, 0 while y = 0: experiments.SummaryDelta),
-- Σz, Σz², Σxz, Σyz, Σrz (z the user's covariate, 0 without one).
local NF = 13
local VM6 = V * M * NF
local acc, hacc = {}, {}
for k = 1, VM6 do acc[k] = 0 end
if H > 1 then
  for k = 1, H * VM6 do hacc[k] = 0 end
else
  hacc = acc
end

local oneHour = H == 1 -- then the hourly deltas are the cumulative ones
-- fresh: the NF sums of the users first exposed in this period (cov
-- only; experiments.Snapshot.Fresh), sparse, same offsets as acc.
local facc = {}

local dup = 0
local G = a[i]; i = i + 1
for g = 1, G do
  local vs, unit = a[i], a[i + 1]
  i = i + 2
  local ukey = KEYS[7 + 2 * vs]
  local sx, sy, sz = {}, {}, {}
  local ufresh -- fresh: 1 or 0 once known (code 0 of the user's state)
  local raw = redis.call('HGET', ukey, unit)
  if raw then
    local st = cmsgpack.unpack(raw)
    for k = 1, #st, 3 do
      local c = st[k]
      if c == 0 then ufresh = st[k + 1]
      elseif c < 0 then sz[-c] = st[k + 1] else sx[c] = st[k + 1]; sy[c] = st[k + 2] end
    end
  end
  local jbefore -- joint: the user's contributions before this group
  if #jpairs > 0 then jbefore = jointBefore(sx, sy) end
  local changed = false
  local E = a[i]; i = i + 1
  local vo = (vs - 1) * M
  local last = true
  for k = 1, E do
    local eid, grp, cap = a[i + 4], a[i + 5], a[i + 6]
    local apply
    if eid == '=' then
      apply = last -- a segment copy of the entry before it
    elseif eid == '' and grp == '' then
      apply = true
    else
      apply = eid == '' or redis.call('SADD', KEYS[2], eid) == 1
      if apply and grp ~= '' and cap > 0 then
        -- The event id is remembered even when the cap refuses it, so a
        -- retry of a refused event stays refused.
        if (tonumber(redis.call('HGET', GK, grp)) or 0) >= cap then
          apply = false
        else
          redis.call('HINCRBY', GK, grp, 1)
        end
      end
      last = apply
    end
    if apply then
      local ms, dx, dy = a[i], a[i + 1], a[i + 2]
      local c = mcode[ms]
      local x0 = sx[c]
      local y0, nn = 0, 0
      if x0 then y0 = sy[c] else x0 = 0; nn = 1 end
      if cov then
        if not ufresh then ufresh = covFresh(unit) end
        if nn == 1 then
          local z = covZ(unit, ms)
          if z ~= 0 then sz[c] = z end
        end
        covAdd(unit, ms, dx, dy)
      end
      local z = sz[c] or 0
      local x1, y1 = x0 + dx, y0 + dy
      sx[c] = x1; sy[c] = y1
      local d2, e2, xy = x1 * x1 - x0 * x0, y1 * y1 - y0 * y0, x1 * y1 - x0 * y0
      local r0, r1 = 0, 0
      if y0 ~= 0 then r0 = x0 / y0 end
      if y1 ~= 0 then r1 = x1 / y1 end
      local dr, dr2 = r1 - r0, r1 * r1 - r0 * r0
      local dz, dz2, dxz, dyz, drz = nn * z, nn * z * z, (x1 - x0) * z, (y1 - y0) * z, dr * z
      local o = (vo + ms - 1) * NF
      acc[o + 1] = acc[o + 1] + nn
      acc[o + 2] = acc[o + 2] + dx
      acc[o + 3] = acc[o + 3] + d2
      acc[o + 4] = acc[o + 4] + dy
      acc[o + 5] = acc[o + 5] + e2
      acc[o + 6] = acc[o + 6] + xy
      acc[o + 7] = acc[o + 7] + dr
      acc[o + 8] = acc[o + 8] + dr2
      acc[o + 9] = acc[o + 9] + dz
      acc[o + 10] = acc[o + 10] + dz2
      acc[o + 11] = acc[o + 11] + dxz
      acc[o + 12] = acc[o + 12] + dyz
      acc[o + 13] = acc[o + 13] + drz
      if ufresh == 1 and not mseg[ms] then
        local fd = {nn, dx, d2, dy, e2, xy, dr, dr2, dz, dz2, dxz, dyz, drz}
        for f = 1, NF do facc[o + f] = (facc[o + f] or 0) + fd[f] end
      end
      if not oneHour and not mseg[ms] then
        o = o + (a[i + 3] - 1) * VM6
        hacc[o + 1] = hacc[o + 1] + nn
        hacc[o + 2] = hacc[o + 2] + dx
        hacc[o + 3] = hacc[o + 3] + d2
        hacc[o + 4] = hacc[o + 4] + dy
        hacc[o + 5] = hacc[o + 5] + e2
        hacc[o + 6] = hacc[o + 6] + xy
        hacc[o + 7] = hacc[o + 7] + dr
        hacc[o + 8] = hacc[o + 8] + dr2
        hacc[o + 9] = hacc[o + 9] + dz
        hacc[o + 10] = hacc[o + 10] + dz2
        hacc[o + 11] = hacc[o + 11] + dxz
        hacc[o + 12] = hacc[o + 12] + dyz
        hacc[o + 13] = hacc[o + 13] + drz
      end
      changed = true
    elseif eid ~= '=' then
      dup = dup + 1
    end
    i = i + 7
  end
  if changed and jbefore then jointAfter(vs, sx, sy, jbefore) end
  if changed then
    local st, n = {}, 0
    for c, x in pairs(sx) do
      st[n + 1] = c; st[n + 2] = x; st[n + 3] = sy[c]
      n = n + 3
    end
    for c, z in pairs(sz) do
      st[n + 1] = -c; st[n + 2] = z; st[n + 3] = 0
      n = n + 3
    end
    if ufresh then st[n + 1] = 0; st[n + 2] = ufresh; st[n + 3] = 0 end
    redis.call('HSET', ukey, unit, cmsgpack.pack(st))
  end
end

local fields = {'n', 'sx', 'sx2', 'sy', 'sy2', 'sxy', 'sr', 'sr2', 'sz', 'sz2', 'sxz', 'syz', 'srz'}
-- addFields adds deltas to float fields of one hash: one HMGET and one
-- HSET per hash and call (per 1000 fields). Values are written with %.17g, which round-trips
-- a double exactly (HINCRBYFLOAT would round to 17 decimal places, losing
-- small values such as squared per-request costs). Fields go in slices of
-- 1000: unpack fails past Lua's C stack limit (8000 values), which a
-- chunk with many segment values reaches, and by then the user states
-- above are written (no rollback).
local function addFields(key, names, deltas)
  for s = 1, #names, 1000 do
    local e = math.min(s + 999, #names)
    local cur = redis.call('HMGET', key, unpack(names, s, e))
    local kv = {}
    for k = s, e do
      kv[#kv + 1] = names[k]
      kv[#kv + 1] = string.format('%.17g', (tonumber(cur[k - s + 1]) or 0) + deltas[k])
    end
    redis.call('HSET', key, unpack(kv))
  end
end
local hnames, hdeltas = {}, {}
for hs = 1, H do hnames[hs] = {}; hdeltas[hs] = {} end
for vs = 1, V do
  local names, deltas = {}, {}
  for ms = 1, M do
    local o = ((vs - 1) * M + ms - 1) * NF
    for f = 1, NF do
      local v = acc[o + f]
      if v ~= 0 then
        names[#names + 1] = mname[ms] .. ':' .. fields[f]
        deltas[#deltas + 1] = v
      end
      local fv = facc[o + f]
      if fv and fv ~= 0 then
        names[#names + 1] = '~f:' .. mname[ms] .. ':' .. fields[f]
        deltas[#deltas + 1] = fv
      end
    end
    for hs = 1, H do
      if mseg[ms] then break end -- segment statistics have no hourly buckets
      local ho = o + (hs - 1) * VM6
      local hn, hd = hnames[hs], hdeltas[hs]
      for f = 1, NF do
        local v = hacc[ho + f]
        if v ~= 0 then
          hn[#hn + 1] = vid[vs] .. ':' .. mname[ms] .. ':' .. fields[f]
          hd[#hd + 1] = v
        end
      end
    end
  end
  if jacc[vs] then -- joint sums of this variant
    for p, d in pairs(jacc[vs]) do
      for f = 1, JF do
        if d[f] ~= 0 then
          names[#names + 1] = '~j:' .. jpairs[p].h .. ':' .. jpairs[p].f .. ':' .. jfields[f]
          deltas[#deltas + 1] = d[f]
        end
      end
    end
  end
  addFields(KEYS[6 + 2 * vs], names, deltas)
  redis.call('SADD', KEYS[5], vid[vs])
end
for hs = 1, H do addFields(KEYS[7 + 2 * V + hs], hnames[hs], hdeltas[hs]) end
for hs = 1, H do redis.call('ZADD', KEYS[6], hid[hs], hid[hs]) end

if cov then covFlush() end

local pttl = redis.call('PTTL', KEYS[1])
for k = 2, NK do
  if k ~= 4 then
    redis.call('SADD', KEYS[1], KEYS[k])
    if pttl > 0 and redis.call('PTTL', KEYS[k]) == -1 then redis.call('PEXPIRE', KEYS[k], pttl) end
  end
end
return {1, dup}
`)

// readScript reads a phase's cumulative statistics as one consistent
// snapshot.
//
// Input:
//
//	KEYS[1] -> abgate:{exp:<id>}:p<n>:variants
//	KEYS[2] -> abgate:{exp:<id>}:p<n>:counters
//	KEYS[3..] -> abgate:{exp:<id>}:p<n>:stats:<v> for the variants the
//	             caller knows of
//
// Output: {variants (SMEMBERS KEYS[1]), HGETALL KEYS[2], HGETALL KEYS[3], ...}.
// If the variants differ from the ones the caller passed, it reads again.
var readScript = redis.NewScript(`
local out = {redis.call('SMEMBERS', KEYS[1]), redis.call('HGETALL', KEYS[2])}
for k = 3, #KEYS do out[k] = redis.call('HGETALL', KEYS[k]) end
return out
`)

// expireScript sets a TTL on every key of an experiment.
//
// Input:
//
//	KEYS[1] -> abgate:{exp:<id>}:keys
//	ARGV[1] -> TTL in ms (<= 0 deletes now)
//
// Output: the number of keys given the TTL (besides KEYS[1]).
//
// The members of KEYS[1] are not declared in KEYS: they all carry the same
// hash tag, so they live in KEYS[1]'s slot and this is safe in a cluster.
var expireScript = redis.NewScript(`
local ks = redis.call('SMEMBERS', KEYS[1])
for _, k in ipairs(ks) do redis.call('PEXPIRE', k, ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return #ks
`)
