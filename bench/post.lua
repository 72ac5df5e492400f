-- wrk script for bench/run.sh: POST an OpenAI-style chat completion with
-- a random X-User-ID (from a pool of 10000) on every request.
--   wrk -t1 -c64 -d10s -s bench/post.lua http://127.0.0.1:18081/v1/chat/completions
wrk.method = "POST"
wrk.body = '{"model":"bench","messages":[{"role":"user","content":"hello"}]}'

local uids = {}
for i = 1, 10000 do
  uids[i] = "user-" .. (i - 1)
end

function init(args)
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
end

function request()
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-User-ID"] = uids[math.random(1, 10000)]
  return wrk.format()
end

-- Non-2xx responses show up in wrk's "Non-2xx or 3xx responses" line;
-- run.sh treats any as a failed measurement.
