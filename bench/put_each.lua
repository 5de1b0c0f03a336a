-- wrk script: the bearer-JWT PUT of put.lua, handed to wrk one request at a time from Lua's
-- request() as bench/signed_put.lua hands over its pre-signed ones, so that the load tool does the
-- same work per request in both rows of bench/signed.sh (wrk's static request, put.lua, costs it
-- less; with wrk near its core's limit that difference shows in the rates).
local token = os.getenv("SLUICE_BENCH_TOKEN") or ""
local body = '{"task":"compress","file":"video-0000000001.mp4","size":1048576,"owner":"worker-1",'
  .. '"tags":["bench","sluice","json"],"note":"' .. string.rep("x", 200) .. '"}'
body = string.sub(body, 1, 198) .. '"}'
local reqs = {}
local n, i = 4096, 0

function init(args)
  for k = 1, n do
    reqs[k] = wrk.format("PUT", "/channels/bench", {
      ["Host"] = os.getenv("SLUICE_SIGNED_HOST"),
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. token,
    }, body)
  end
end

function request()
  i = i + 1
  if i > n then
    i = 1
  end
  return reqs[i]
end
